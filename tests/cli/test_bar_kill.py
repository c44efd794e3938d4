"""Kill ``allocator bar run`` with SIGKILL at every checkpoint and at random instants; between
the kill and the re-run, late intents arrive on both sides of a traded symbol. The re-run of the
FAILED run must end with: one order per (bar, symbol, side) at the venue, the venue's positions
equal to the ledger's book, the strategies' virtual positions summing to it, a ``late`` refusal
for every late intent, every venue fill in the ledger (and settled) exactly once. A
reconciliation between the kill and the re-run (the next bar's) halts no venue.

The simulated venue keeps its orders in the ledger's database (``paper_orders``), so it
survives the kill like a real venue; both the SQLite and the PostgreSQL ledger are used.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from allocator.execution import DEFAULT_INSTRUMENTS, Intent, parse_bar
from allocator.execution.ledger import BarState
from allocator.execution.orders import AssetClass, Venue
from allocator.execution.reasons import Reason
from allocator.execution.reconcile import reconcile_at_start
from allocator.rebalance import AllocationRow
from cli.main import main
from resources.brokers.registry import pipeline_venues
from resources.ledger import Ledger
from tests.cli.bar_kill_client import Zygote

D = Decimal

ROOT = Path(__file__).resolve().parents[2]
BAR = parse_bar("2024-05-01")
# SPY: A buys 100, B sells 60 (net buy 40 at alpaca); BTC/USDT: B buys 0.01 (ccxt).
INTENTS = [
    ("a1", "A", "SPY", AssetClass.ETF, D(100)),
    ("b1", "B", "SPY", AssetClass.ETF, D(-60)),
    ("b2", "B", "BTC/USDT", AssetClass.CRYPTO, D("0.01")),
]
EXPECTED_POSITIONS = {
    ("A", "SPY"): D(100),
    ("B", "SPY"): D(-60),
    ("B", "BTC/USDT"): D("0.01"),
}
# 2 orders: sealed, planned, journaled, (ack, fill) x 2, recording, recorded.
N_CHECKPOINTS = 9


def _setup(url: str, tmp: Path) -> Path:
    ledger = Ledger(url)
    try:
        ledger.write_allocations(
            AllocationRow(
                date="2024-04-30",
                strategy=s,
                capital=D(100_000),
                final_weight=1 / 3,
                breaker_state="normal",
                benched=False,
            )
            for s in ("A", "B", "C")
        )
        ledger.submit_intents(
            [
                Intent(intent_id=i, strategy=s, symbol=m, asset_class=c, qty=q, bar=BAR)
                for i, s, m, c, q in INTENTS
            ]
        )
    finally:
        ledger.close()
    prices = tmp / "prices.csv"
    prices.write_text("symbol,price\nSPY,500.25\nBTC/USDT,60000\n", encoding="utf-8")
    return prices


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_MODE")}  # the sim venues
    return dict(env, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore")


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """``allocator bar run`` in children forked from one warm parent (``bar_kill_zygote.py``):
    each a process of its own, really SIGKILLed, without a new interpreter's seconds of imports."""
    z = Zygote()
    try:
        yield z
    finally:
        z.close()


_RUNS = [0]


def _run(
    zygote: Zygote, url: str, prices: Path, crash_at: str = ""
) -> subprocess.CompletedProcess[str]:
    """``allocator bar run BAR`` in a new process; ``crash_at`` as ``bar_kill_script.py``'s, or
    ``@SECONDS`` (SIGKILL that long after the seal)."""
    _RUNS[0] += 1
    folder = prices.parent
    out, err = folder / f"run{_RUNS[0]}.out", folder / f"run{_RUNS[0]}.err"
    args = ["bar", "run", BAR.key, "--ledger", url, "--prices", str(prices)]
    ended = zygote.run_args(args, _env(), crash_at, out, err)
    return subprocess.CompletedProcess(args, ended.returncode, ended.stdout, ended.stderr)


def _kill_at_random(zygote: Zygote, url: str, prices: Path, seed: int) -> int:
    """Start the bar and SIGKILL it a seeded delay after its seal."""
    delay = random.Random(seed).uniform(0.0, 0.04)  # the bar takes ~40 ms after its seal
    return _run(zygote, url, prices, f"@{delay:.4f}").returncode


def _submit_late(url: str, tmp: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Late intents on both sides of SPY (and a resubmission of a sealed one, unchanged)."""
    path = tmp / "late.csv"
    path.write_text(
        "intent_id,strategy,symbol,asset_class,qty,bar\n"
        "late-buy,C,SPY,etf,7,2024-05-01\n"
        "late-sell,A,SPY,etf,-30,2024-05-01\n"
        "a1,A,SPY,etf,100,2024-05-01\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    code = main(
        ["intents", "submit", str(path), "--ledger", url, "--now", "2024-05-01T10:00:00+00:00"]
    )
    out = capsys.readouterr()
    assert code == 1, out
    assert out.err.count(": late: ") == 2, out.err
    assert "0 intent(s) stored, 1 already stored, 2 refused" in out.out
    return ["late-buy", "late-sell"]


def _check_after_rerun(url: str, late: list[str]) -> None:
    ledger = Ledger(url)
    try:
        assert ledger.bar_done(BAR)
        status = ledger.bar_status(BAR)
        assert status is not None
        assert status.state is BarState.SETTLED
        brokers = pipeline_venues(DEFAULT_INSTRUMENTS, ledger=ledger)
        journal = ledger.orders(BAR)
        assert sorted((o["symbol"], o["side"], o["qty"]) for o in journal) == [
            ("BTC/USDT", "buy", D("0.01")),
            ("SPY", "buy", D(40)),
        ]
        venue_of = {o["symbol"]: Venue(o["venue"]) for o in journal}
        # One order per (bar, symbol, side) at the venues.
        at_venues = [
            (o.symbol, o.side.value)
            for b in brokers.values()
            for o in b.state.orders(b.name)  # type: ignore[attr-defined]
        ]
        assert sorted(at_venues) == [("BTC/USDT", "buy"), ("SPY", "buy")]
        # The strategies' books, and their per-venue sum equal to each venue's position.
        positions = ledger.positions()
        assert positions == EXPECTED_POSITIONS
        book: dict[Venue, dict[str, D]] = {}
        for (_, symbol), qty in positions.items():
            per = book.setdefault(venue_of[symbol], {})
            per[symbol] = per.get(symbol, D(0)) + qty
        for venue, broker in brokers.items():
            held = {s: q for s, q in broker.positions().items() if q != 0}
            assert held == book.get(venue, {}), venue
        # Every venue fill in the ledger once, and settled by the bar.
        venue_fills = sorted(
            f.fill_id
            for b in brokers.values()
            for f in b.fills()  # type: ignore[attr-defined]
        )
        assert sorted(f.fill_id for f in ledger.broker_fills()) == venue_fills
        assert len(venue_fills) == 2
        assert ledger.unsettled_fills() == []
        # Every late intent has its refusal row; none of them reached the inbox.
        refused = {r.key: r.reason for r in ledger.refusals(BAR)}
        assert refused == dict.fromkeys(late, Reason.LATE)
        assert sorted(i.intent_id for i in ledger.intents_for_bar(BAR)) == ["a1", "b1", "b2"]
    finally:
        ledger.close()


def _reconcile_halts_nothing(url: str) -> None:
    ledger = Ledger(url)
    try:
        brokers = pipeline_venues(DEFAULT_INSTRUMENTS, ledger=ledger)
        reconcile_at_start(ledger, brokers, source="next bar")
        assert ledger.venue_halts() == {}
    finally:
        ledger.close()


@pytest.mark.parametrize("nth", range(1, N_CHECKPOINTS + 1))
def test_kill_at_every_checkpoint_then_rerun_settles_once(
    zygote: Zygote, ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], nth: int
) -> None:
    prices = _setup(ledger_url, tmp_path)
    killed = _run(zygote, ledger_url, prices, f"#{nth}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ledger = Ledger(ledger_url)
    try:
        status = ledger.bar_status(BAR)
        assert status is not None  # the first checkpoint is after the seal
        settled = ledger.bar_done(BAR)
        assert settled == (nth == N_CHECKPOINTS)  # killed after "recorded": it is settled
    finally:
        ledger.close()
    _reconcile_halts_nothing(ledger_url)
    late = _submit_late(ledger_url, tmp_path, capsys)
    rerun = _run(zygote, ledger_url, prices)
    assert rerun.returncode == 0, rerun.stderr
    _check_after_rerun(ledger_url, late)
    again = _run(zygote, ledger_url, prices)
    assert again.returncode == 0
    assert "already settled" in again.stdout
    _check_after_rerun(ledger_url, late)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_kill_at_a_random_instant_then_rerun_settles_once(
    zygote: Zygote, ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    prices = _setup(ledger_url, tmp_path)
    code = _kill_at_random(zygote, ledger_url, prices, seed)
    assert code in (0, -signal.SIGKILL)
    late = _submit_late(ledger_url, tmp_path, capsys)
    rerun = _run(zygote, ledger_url, prices)
    assert rerun.returncode == 0, rerun.stderr
    _check_after_rerun(ledger_url, late)


def test_a_crash_between_fill_and_record_does_not_halt_the_next_bar(
    zygote: Zygote, ledger_url: str, tmp_path: Path
) -> None:
    prices = _setup(ledger_url, tmp_path)
    killed = _run(zygote, ledger_url, prices, "recording")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ledger = Ledger(ledger_url)
    try:
        assert not ledger.bar_done(BAR)
        assert {o["state"] for o in ledger.orders(BAR)} == {"filled"}
        assert len(ledger.unsettled_fills()) == 2  # journaled as they arrived
        brokers = pipeline_venues(DEFAULT_INSTRUMENTS, ledger=ledger)
        report = reconcile_at_start(ledger, brokers, source="next bar")
        assert ledger.venue_halts() == {}, report
        expected = ledger.expectation(Venue.ALPACA)
        assert expected.positions == {"SPY": D(40)}  # the unsettled fill is the ledger's own
    finally:
        ledger.close()
    assert _run(zygote, ledger_url, prices).returncode == 0
    _check_after_rerun(ledger_url, [])


def test_bar_status_json_shows_lifecycle_orders_fills_and_refusals(
    zygote: Zygote, ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    prices = _setup(ledger_url, tmp_path)
    assert _run(zygote, ledger_url, prices, "fill:").returncode == -signal.SIGKILL
    late = _submit_late(ledger_url, tmp_path, capsys)
    assert main(["bar", "status", BAR.key, "--ledger", ledger_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settled"] is False
    assert report["lifecycle"]["state"] == "planned"
    assert report["lifecycle"]["sealed_by"] == "allocator bar run"
    assert len(report["plan_digest"]) == 64
    assert [r["intent_id"] for r in report["refusals"]] == late
    filled = [o for o in report["orders"] if o["fills"]]
    assert len(filled) == 1
    assert filled[0]["fills"][0]["settled"] is False
    assert main(["bar", "run", BAR.key, "--ledger", ledger_url, "--prices", str(prices)]) == 0
    capsys.readouterr()
    assert main(["bar", "status", BAR.key, "--ledger", ledger_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settled"] is True
    assert report["lifecycle"]["state"] == "settled"
    assert all(f["settled"] for o in report["orders"] for f in o["fills"])


def test_bar_run_without_prices_for_an_unplanned_bar_is_bad_input(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(ledger_url, tmp_path)
    assert main(["bar", "run", BAR.key, "--ledger", ledger_url]) == 2
    assert "no reference prices" in capsys.readouterr().err
