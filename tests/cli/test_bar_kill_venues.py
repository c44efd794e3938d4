"""The kill proof of ``allocator bar run`` on each local fake venue, through the real adapters.

``tests/cli/test_bar_kill.py`` proves it on the simulated venue; here each venue is in ``paper``
mode (``<VENUE>_MODE=paper``, the registry's real adapter: alpaca-py, ccxt, ib_async) pointed at
its fake running in the test process: Alpaca (ETF and equity), Binance and Bybit (crypto spot
through ccxt), TWS (a future and a forex pair). The fake outlives the killed process, as a real
venue does. ``allocator bar run`` is SIGKILLed at every checkpoint of the bar and at seeded
random instants after the seal; between the kill and the re-run a reconciliation (the next
bar's) halts nothing and late intents arrive on both sides of a traded symbol. After the
re-run, read from the fake's own state (``order_book()``, ``holdings()``):

* each (bar, symbol, side) has exactly one order at the venue, with the journal's client id;
* the venue's position equals the ledger's book;
* the strategies' virtual positions sum to the book;
* every late intent has a ``late`` refusal row and none reached the inbox;
* every execution the venue reported is in the ledger once, settled.

Each bar runs in a child process forked from a warm parent (``bar_kill_zygote.py``): a process
of its own, killed for real, without paying seconds of imports per bar. The checkpoints of a
bar of two orders: sealed, planned, journaled, (ack, fill) of each order, recording, recorded
(a fake that fills in its reply gives ack and fill in one update).

Fees are taken in the quote currency on every fake (Binance's and Bybit's ``fee_asset =
"quote"``): a fee in the base coin is a separate settlement rule with its own tests.
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from allocator.execution import Intent, parse_bar
from allocator.execution.instruments import DEFAULT_INSTRUMENTS, load_instruments
from allocator.execution.ledger import BarState
from allocator.execution.orders import AssetClass, Venue
from allocator.execution.reasons import Reason
from allocator.execution.reconcile import reconcile_at_start
from allocator.rebalance import AllocationRow
from cli.main import main
from resources.brokers.registry import pipeline_venues
from resources.ledger import Ledger, LedgerPaperState
from tests.cli.bar_kill_client import Ended, Zygote
from tests.fakes._book import HeldOrder

D = Decimal
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("bar_kill_script.py")
ROOT = Path(__file__).resolve().parents[2]
BAR = parse_bar("2024-05-01")
CAPITAL = D(2_000_000)  # per strategy: room for two ES contracts (530k notional)

Row = tuple[str, str, str, AssetClass, D]  # intent_id, strategy, symbol, asset class, qty


class Fake:
    """What the tests need of a fake venue (``tests/fakes``)."""

    def start(self) -> Any: ...
    def stop(self) -> None: ...
    def order_book(self) -> list[HeldOrder]: ...
    def holdings(self) -> dict[str, D]: ...


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One fake venue and a bar that trades only there.

    ``intents`` cross on ``crossed`` (the late intents arrive on both of its sides) and trade
    one more symbol; ``symbols`` maps the venue's own symbol to the allocator's.
    """

    name: str
    venue: Venue
    make: Callable[[], Any]
    env: Callable[[Any], dict[str, str]]
    intents: tuple[Row, ...]
    crossed: tuple[str, AssetClass, D]  # symbol, class, a lot-multiple quantity
    prices: dict[str, str]
    symbols: dict[str, str]
    orders: tuple[tuple[str, str, D], ...]  # the bar's net orders: symbol, side, qty
    instruments: str = ""  # a symbol table CSV, when the bundled one lacks the symbols
    checkpoints: int = 9  # sealed, planned, journaled, (ack, fill) x orders, recording, recorded
    span_s: float = 0.3  # about how long the bar takes after its seal


def _fake_alpaca() -> Any:
    from tests.fakes.fake_alpaca import FakeAlpaca

    return FakeAlpaca()


def _fake_binance() -> Any:
    from tests.fakes.fake_binance import FakeBinance

    fake = FakeBinance()
    fake.fee_asset = "quote"
    return fake


def _fake_bybit() -> Any:
    from tests.fakes.fake_bybit import FakeBybit

    fake = FakeBybit()
    fake.fee_asset = "quote"
    return fake


def _fake_tws() -> Any:
    from tests.fakes.fake_tws import FakeTws

    return FakeTws()


def _alpaca_env(fake: Any) -> dict[str, str]:
    return {
        "ALPACA_MODE": "paper",
        "ALPACA_API_KEY": fake.key,
        "ALPACA_SECRET_KEY": fake.secret,
        "ALPACA_BASE_URL": fake.url,
    }


def _ccxt_env(exchange: str) -> Callable[[Any], dict[str, str]]:
    def env(fake: Any) -> dict[str, str]:
        return {
            "CCXT_MODE": "paper",
            "CCXT_EXCHANGE": exchange,
            "CCXT_API_KEY": fake.key,
            "CCXT_SECRET": fake.secret,
            "CCXT_BASE_URL": fake.url,
        }

    return env


def _tws_env(fake: Any) -> dict[str, str]:
    return {"IB_MODE": "paper", "IB_HOST": "127.0.0.1", "IB_PORT": str(fake.port)}


ETF, EQUITY, CRYPTO = AssetClass.ETF, AssetClass.EQUITY, AssetClass.CRYPTO
FUTURE, FOREX = AssetClass.FUTURE, AssetClass.FOREX
ES = "ES:202506:CME"  # the IB adapter's future symbol: root, contract month, exchange

SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            name="alpaca",
            venue=Venue.ALPACA,
            make=_fake_alpaca,
            env=_alpaca_env,
            intents=(
                ("a1", "A", "SPY", ETF, D(100)),
                ("b1", "B", "SPY", ETF, D(-60)),
                ("b2", "B", "AAPL", EQUITY, D(-5)),
            ),
            crossed=("SPY", ETF, D(7)),
            prices={"SPY": "500.25", "AAPL": "190.10"},
            symbols={"SPY": "SPY", "AAPL": "AAPL"},
            orders=(("AAPL", "sell", D(5)), ("SPY", "buy", D(40))),
        ),
        Scenario(
            name="binance",
            venue=Venue.CCXT,
            make=_fake_binance,
            env=_ccxt_env("binance"),
            intents=(
                ("a1", "A", "BTC/USDT", CRYPTO, D("0.03")),
                ("b1", "B", "BTC/USDT", CRYPTO, D("-0.01")),
                ("b2", "B", "ETH/USDT", CRYPTO, D("0.5")),
            ),
            crossed=("BTC/USDT", CRYPTO, D("0.004")),
            prices={"BTC/USDT": "60000", "ETH/USDT": "3000"},
            symbols={"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"},
            orders=(("BTC/USDT", "buy", D("0.02")), ("ETH/USDT", "buy", D("0.5"))),
        ),
        Scenario(
            name="bybit",
            venue=Venue.CCXT,
            make=_fake_bybit,
            env=_ccxt_env("bybit"),
            intents=(
                ("a1", "A", "BTC/USDT", CRYPTO, D("0.03")),
                ("b1", "B", "BTC/USDT", CRYPTO, D("-0.01")),
                ("b2", "B", "ETH/USDT", CRYPTO, D("0.5")),
            ),
            crossed=("BTC/USDT", CRYPTO, D("0.004")),
            prices={"BTC/USDT": "60000", "ETH/USDT": "3000"},
            symbols={"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"},
            orders=(("BTC/USDT", "buy", D("0.02")), ("ETH/USDT", "buy", D("0.5"))),
        ),
        Scenario(
            name="tws",
            venue=Venue.IBKR,
            make=_fake_tws,
            env=_tws_env,
            intents=(
                ("a1", "A", ES, FUTURE, D(2)),
                ("b1", "B", ES, FUTURE, D(-1)),
                ("b2", "B", "EUR/USD", FOREX, D(-20000)),
            ),
            crossed=(ES, FUTURE, D(1)),
            prices={ES: "5300.25", "EUR/USD": "1.085"},
            symbols={"ESM5": ES, "EUR.USD": "EUR/USD"},
            orders=(("EUR/USD", "sell", D(20000)), (ES, "buy", D(1))),
            instruments=(
                "symbol,asset_class,lot_size,tick_size,min_notional,multiplier\n"
                f"{ES},future,1,0.25,0,50\n"
                "EUR/USD,forex,1000,0.00005,0,1\n"
            ),
            span_s=1.0,
        ),
    )
}


@dataclass
class Bench:
    """One test's world: the scenario, its running fake, a fresh ledger and the files."""

    scenario: Scenario
    fake: Any
    url: str
    tmp: Path
    prices: Path
    instruments: Path | None
    runs: int = 0

    @property
    def venue_env(self) -> dict[str, str]:
        return self.scenario.env(self.fake)

    def args(self) -> list[str]:
        out = ["bar", "run", BAR.key, "--ledger", self.url, "--prices", str(self.prices)]
        if self.instruments is not None:
            out += ["--instruments", str(self.instruments)]
        return out

    def table(self) -> Any:
        return (
            DEFAULT_INSTRUMENTS if self.instruments is None else load_instruments(self.instruments)
        )


def _environment(bench: Bench) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_MODE")}
    env.update(bench.venue_env)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONWARNINGS"] = "ignore"
    return env


@pytest.fixture
def bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    scenario = SCENARIOS[request.param]
    fake = scenario.make().start()
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger(url)
    try:
        ledger.write_allocations(
            AllocationRow(
                date="2024-04-30",
                strategy=s,
                capital=CAPITAL,
                final_weight=1 / 3,
                breaker_state="normal",
                benched=False,
            )
            for s in ("A", "B", "C")
        )
        ledger.submit_intents(
            [
                Intent(intent_id=i, strategy=s, symbol=m, asset_class=c, qty=q, bar=BAR)
                for i, s, m, c, q in scenario.intents
            ]
        )
    finally:
        ledger.close()
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "symbol,price\n" + "".join(f"{s},{p}\n" for s, p in scenario.prices.items()),
        encoding="utf-8",
    )
    instruments = None
    if scenario.instruments:
        instruments = tmp_path / "instruments.csv"
        instruments.write_text(scenario.instruments, encoding="utf-8")
    try:
        yield Bench(scenario, fake, url, tmp_path, prices, instruments)
    finally:
        fake.stop()


def _run(zygote: Zygote, bench: Bench, crash_at: str = "") -> Ended:
    """One ``allocator bar run`` of ``bench`` in a new child of ``zygote``; how it ended."""
    bench.runs += 1
    out, err = bench.tmp / f"run{bench.runs}.out", bench.tmp / f"run{bench.runs}.err"
    return zygote.run_args(bench.args(), _environment(bench), crash_at, out, err)


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    try:
        yield z
    finally:
        z.close()


def _brokers(bench: Bench, ledger: Ledger) -> dict[Venue, Any]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_MODE")}
    env.update(bench.venue_env)
    return pipeline_venues(bench.table(), ledger=ledger, env=env, timeout_s=5.0)


def _close(brokers: dict[Venue, Any]) -> None:
    for broker in brokers.values():
        close = getattr(broker, "close", None)
        if close is not None:
            close()


def _reconcile_halts_nothing(bench: Bench) -> None:
    ledger = Ledger(bench.url)
    brokers = _brokers(bench, ledger)
    try:
        report = reconcile_at_start(ledger, brokers, source="next bar")
        assert ledger.venue_halts() == {}, report
    finally:
        _close(brokers)
        ledger.close()


def _submit_late(bench: Bench, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Late intents on both sides of the crossed symbol, and a sealed one resubmitted."""
    symbol, cls, qty = bench.scenario.crossed
    a1 = next(r for r in bench.scenario.intents if r[0] == "a1")
    path = bench.tmp / "late.csv"
    path.write_text(
        "intent_id,strategy,symbol,asset_class,qty,bar\n"
        f"late-buy,C,{symbol},{cls.value},{qty},2024-05-01\n"
        f"late-sell,A,{symbol},{cls.value},{-qty},2024-05-01\n"
        f"a1,A,{a1[2]},{a1[3].value},{a1[4]},2024-05-01\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    args = ["intents", "submit", str(path), "--ledger", bench.url]
    if bench.instruments is not None:
        args += ["--instruments", str(bench.instruments)]
    code = main([*args, "--now", "2024-05-01T10:00:00+00:00"])
    out = capsys.readouterr()
    assert code == 1, out
    assert out.err.count(": late: ") == 2, out.err
    assert "0 intent(s) stored, 1 already stored, 2 refused" in out.out
    return ["late-buy", "late-sell"]


def _check_after_rerun(bench: Bench, late: list[str]) -> None:
    scenario = bench.scenario
    held = bench.fake.order_book()
    ledger = Ledger(bench.url)
    try:
        assert ledger.bar_done(BAR)
        status = ledger.bar_status(BAR)
        assert status is not None
        assert status.state is BarState.SETTLED
        journal = ledger.orders(BAR)
        assert sorted((o["symbol"], o["side"], o["qty"]) for o in journal) == sorted(
            scenario.orders
        )
        assert {o["venue"] for o in journal} == {scenario.venue.value}
        assert {o["mode"] for o in journal} == {"paper"}
        # Exactly one order per (bar, symbol, side) at the venue, each the journal's own.
        at_venue = Counter((scenario.symbols[o.symbol], o.side) for o in held)
        assert at_venue == Counter((s, side) for s, side, _ in scenario.orders), held
        cids = {(o["symbol"], o["side"]): o["client_order_id"] for o in journal}
        for order in held:
            key = (scenario.symbols[order.symbol], order.side)
            assert order.client_order_id == cids[key], order
            assert order.filled == order.qty, order  # the fakes fill market orders whole
        # The venue's position is the ledger's book; the strategies' positions sum to it.
        positions = ledger.positions()
        expected: dict[tuple[str, str], D] = {}
        for _, strategy, symbol, _, qty in scenario.intents:
            expected[(strategy, symbol)] = expected.get((strategy, symbol), D(0)) + qty
        assert positions == expected
        book: dict[str, D] = {}
        for (_, symbol), qty in positions.items():
            book[symbol] = book.get(symbol, D(0)) + qty
        book = {s: q for s, q in book.items() if q}
        holdings = {scenario.symbols[s]: q for s, q in bench.fake.holdings().items()}
        assert holdings == book
        signed = {s: (q if side == "buy" else -q) for s, side, q in scenario.orders}
        assert book == signed
        # Every execution the venue reported is in the ledger once, and settled.
        venue_fills = sorted(f for o in held for f in o.fill_ids)
        assert venue_fills
        assert sorted(f.fill_id for f in ledger.broker_fills()) == venue_fills
        assert ledger.unsettled_fills() == []
        # Every late intent has its refusal row; none of them reached the inbox.
        refused = {r.key: r.reason for r in ledger.refusals(BAR)}
        assert refused == dict.fromkeys(late, Reason.LATE)
        assert sorted(i.intent_id for i in ledger.intents_for_bar(BAR)) == ["a1", "b1", "b2"]
        # The simulated venues (the other two) were not traded.
        sim = LedgerPaperState(ledger)
        assert [o for v in Venue for o in sim.orders(f"paper-{v.value}")] == []
    finally:
        ledger.close()


def _rerun_and_check(zygote: Zygote, bench: Bench, late: list[str], *, again: bool) -> None:
    rerun = _run(zygote, bench)
    assert rerun.returncode == 0, rerun.stderr
    _check_after_rerun(bench, late)
    if not again:
        return
    third = _run(zygote, bench)
    assert third.returncode == 0, third.stderr
    assert "already settled" in third.stdout
    _check_after_rerun(bench, late)


CHECKPOINT_CASES = [
    pytest.param(name, nth, id=f"{name}-{nth}")
    for name, s in SCENARIOS.items()
    for nth in range(1, s.checkpoints + 1)
]


@pytest.mark.parametrize(("bench", "nth"), CHECKPOINT_CASES, indirect=["bench"])
def test_kill_at_every_checkpoint_then_rerun_settles_once(
    zygote: Zygote, bench: Bench, capsys: pytest.CaptureFixture[str], nth: int
) -> None:
    killed = _run(zygote, bench, f"#{nth}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ledger = Ledger(bench.url)
    try:
        assert ledger.bar_status(BAR) is not None  # the first checkpoint is after the seal
        assert ledger.bar_done(BAR) == (nth == bench.scenario.checkpoints)
    finally:
        ledger.close()
    _reconcile_halts_nothing(bench)
    late = _submit_late(bench, capsys)
    _rerun_and_check(zygote, bench, late, again=False)


RANDOM_CASES = [
    pytest.param(name, seed, id=f"{name}-seed{seed}") for name in SCENARIOS for seed in (11, 12, 13)
]


@pytest.mark.parametrize(("bench", "seed"), RANDOM_CASES, indirect=["bench"])
def test_kill_at_a_random_instant_then_rerun_settles_once(
    zygote: Zygote, bench: Bench, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    delay = random.Random(seed).uniform(0.0, bench.scenario.span_s)
    killed = _run(zygote, bench, f"@{delay:.4f}")
    assert killed.returncode in (0, -signal.SIGKILL), killed.stderr
    _reconcile_halts_nothing(bench)
    late = _submit_late(bench, capsys)
    _rerun_and_check(zygote, bench, late, again=True)  # and a third run: "already settled"
