"""The ledger's one API on both stores: it is the core's ``Ledger`` protocol, and the reads the
bar sensor, the dashboard and reconciliation use instead of the tables."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from allocator.config import RoutingConfig
from allocator.execution import DEFAULT_INSTRUMENTS, Intent, parse_bar, run_bar
from allocator.execution import Ledger as LedgerProtocol
from allocator.execution.bar import BarOutcome
from allocator.execution.ledger import ExpectedOrder, SettledBar
from allocator.execution.orders import (
    AssetClass,
    BrokerOrder,
    OrderRequest,
    OrderState,
    Side,
    SubmitOutcome,
    Venue,
)
from resources.brokers.paper.client import PaperBroker
from resources.ledger import AllocationRow, Ledger, LedgerPaperState
from resources.ledger.engine import shown_url

D = Decimal
ROOT = Path(__file__).resolve().parents[3]


def _members(protocol: type) -> list[str]:
    return sorted(n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_"))


def test_the_ledger_is_the_core_protocol(ledger: Ledger) -> None:
    assert isinstance(ledger, LedgerProtocol)
    members = _members(LedgerProtocol)
    assert "record_bar" in members
    assert "journal_manual_order" in members
    assert "expectation" in members
    # Structurally, member by member: the same parameters, kinds and defaults.
    for name in members:
        wanted = inspect.signature(getattr(LedgerProtocol, name)).parameters
        actual = inspect.signature(getattr(Ledger, name)).parameters
        assert [(p.name, p.kind, p.default) for p in actual.values()] == [
            (p.name, p.kind, p.default) for p in wanted.values()
        ], name


PROBE = """
from allocator.execution.ledger import Ledger as Protocol
from resources.ledger import Ledger
from resources.ledger.journal import Journal

whole: Protocol = Ledger("sqlite://")
part: Protocol = Journal("sqlite://")
"""


def test_mypy_sees_the_ledger_as_the_protocol_and_one_part_as_not(tmp_path: Path) -> None:
    """The static check (the one ``cli`` and ``demo`` rely on under ``mypy --strict``): the
    whole ledger is assignable to the protocol, one part alone is not."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            str(probe),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert "probe.py:7: error: Incompatible types in assignment" in errors[0]
    assert '"Journal"' in errors[0]


def test_a_bar_outcome_is_a_settled_bar() -> None:
    fields = {f.name for f in dataclasses.fields(BarOutcome)}
    properties = {n for n, v in vars(BarOutcome).items() if isinstance(v, property)}
    wanted = {n for n, v in vars(SettledBar).items() if isinstance(v, property)}
    assert wanted == {"gated", "fills", "would_pay", "fee_paid", "savings"}
    assert wanted <= fields | properties


def _intent(i: str, s: str, m: str, q: str | int, bar: str) -> Intent:
    asset_class = DEFAULT_INSTRUMENTS[m].asset_class if m in DEFAULT_INSTRUMENTS else None
    return Intent(
        intent_id=i,
        strategy=s,
        symbol=m,
        asset_class=asset_class or AssetClass.EQUITY,
        qty=D(str(q)),
        bar=parse_bar(bar),
    )


def _run(ledger: Ledger, bar: str, prices: dict[str, str]) -> None:
    state = LedgerPaperState(ledger)
    brokers = {v: PaperBroker(venue=v, instruments=DEFAULT_INSTRUMENTS, state=state) for v in Venue}
    b = parse_bar(bar)
    run_bar(
        ledger=ledger,
        brokers=brokers,
        bar=b,
        prices={k: D(v) for k, v in prices.items()},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
        cash_quantum=D("0.00000001"),
        fee_model=brokers[Venue.ALPACA].config.fees.fee,
        lookup_delay_s=0.0,
    )


def test_pending_bars_are_the_unrecorded_inbox_in_bar_order(ledger: Ledger) -> None:
    assert ledger.pending_bars() == []
    before = datetime.now(UTC)
    ledger.submit_intents(
        [
            _intent("b1", "B", "SPY", 1, "2024-05-02"),
            _intent("a1", "A", "SPY", 1, "2024-05-01"),
            _intent("a2", "A", "KO", 1, "2024-05-01"),
            _intent("c1", "C", "SPY", 1, "2024-05-01"),
        ]
    )
    pending = ledger.pending_bars()
    assert [(p.bar, p.strategies) for p in pending] == [
        ("2024-05-01", {"A", "C"}),
        ("2024-05-02", {"B"}),
    ]
    for p in pending:
        assert p.first_received_at.tzinfo is not None
        assert before <= p.first_received_at <= datetime.now(UTC)
    assert [p.bar for p in ledger.pending_bars("2024-05-01")] == ["2024-05-02"]
    _run(ledger, "2024-05-01", {"SPY": "500", "KO": "60"})
    assert [p.bar for p in ledger.pending_bars()] == ["2024-05-02"]  # recorded bars drop out


def test_active_strategies_follow_the_latest_allocation(ledger: Ledger) -> None:
    assert ledger.active_strategies() == set()
    ledger.register_strategies(["A", "B", "C"])
    assert ledger.active_strategies() == {"A", "B", "C"}  # before the first allocation

    def row(day: str, s: str, benched: bool) -> AllocationRow:
        return AllocationRow(
            date=day,
            strategy=s,
            capital=D(1000),
            final_weight=0.5,
            breaker_state="normal",
            benched=benched,
        )

    ledger.write_allocations([row("2024-05-01", "A", False), row("2024-05-01", "B", True)])
    assert ledger.active_strategies() == {"A"}
    ledger.write_allocations([row("2024-05-02", "A", True), row("2024-05-02", "B", False)])
    assert ledger.active_strategies() == {"B"}  # only the latest session counts
    ledger.write_allocations([row("2024-05-03", "B", True)])
    assert ledger.active_strategies() == set()  # everyone benched: nobody to wait for


def test_the_history_reads_agree_with_the_per_bar_reads(ledger: Ledger) -> None:
    ledger.submit_intents(
        [
            _intent("a1", "A", "SPY", 10, "2024-05-01"),
            _intent("b1", "B", "SPY", -4, "2024-05-01"),  # crossed internally against A
            _intent("c1", "C", "BTC/USDT", "0.1", "2024-05-01"),
            _intent("x1", "A", "NOPE", 1, "2024-05-01"),  # refused: unknown symbol
            _intent("a2", "A", "SPY", -10, "2024-05-02"),
        ]
    )
    _run(ledger, "2024-05-01", {"SPY": "500", "BTC/USDT": "60000"})
    _run(ledger, "2024-05-02", {"SPY": "501"})
    bars = ["2024-05-01", "2024-05-02"]
    assert ledger.recorded_bars() == bars
    virtual = ledger.virtual_fills_by_bar()
    assert list(virtual) == bars
    for bar in bars:
        assert virtual[bar] == ledger.virtual_fills(parse_bar(bar))
    assert any(f.internal for f in virtual["2024-05-01"])
    broker = ledger.broker_fills_by_bar()
    assert list(broker) == bars
    assert sorted(f.fill_id for fills in broker.values() for f in fills) == sorted(
        f.fill_id for f in ledger.broker_fills()
    )
    for bar, fills in broker.items():
        journaled = {o["client_order_id"] for o in ledger.orders(parse_bar(bar))}
        assert {f.client_order_id for f in fills} <= journaled
        assert [f.fill_id for f in fills] == sorted(f.fill_id for f in fills)
    assert {f.symbol: (f.side, f.qty) for f in broker["2024-05-01"]} == {
        "SPY": (Side.BUY, D(6)),
        "BTC/USDT": (Side.BUY, D("0.1")),
    }
    savings = ledger.savings_by_bar()
    assert set(savings) == set(bars)
    for bar, s in savings.items():
        assert s.savings == ledger.savings(parse_bar(bar))
        assert s.would_pay - s.fee_paid == s.savings
    assert savings["2024-05-01"].fee_paid > 0  # the crypto order paid its fee
    assert ledger.refusal_counts() == {"unknown_symbol": 1}


def _open(cid: str, qty: str, filled: str) -> SubmitOutcome:
    return SubmitOutcome(
        state=OrderState.PARTIALLY_FILLED,
        order=BrokerOrder(
            client_order_id=cid,
            venue_order_id=f"v-{cid}",
            symbol="SPY",
            side=Side.BUY,
            qty=D(qty),
            filled_qty=D(filled),
            avg_price=D(500),
            fee=D(0),
            state=OrderState.PARTIALLY_FILLED,
            fills=(),
        ),
        placed_by_this_call=True,
    )


def _manual(cid: str, venue: Venue, symbol: str) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol=symbol,
        asset_class=DEFAULT_INSTRUMENTS[symbol].asset_class,
        side=Side.BUY,
        qty=D(3),
        venue=venue,
        reference_price=D(500),
    )


def test_expectation_per_venue(ledger: Ledger) -> None:
    empty = ledger.expectation("alpaca")
    assert (empty.positions, empty.open_orders, empty.uncertain) == ({}, (), frozenset())
    assert empty.source == shown_url(ledger.url)
    assert "@" not in empty.source
    ledger.submit_intents(
        [
            _intent("a1", "A", "SPY", 10, "2024-05-01"),
            _intent("b1", "B", "SPY", 5, "2024-05-01"),
            _intent("c1", "C", "BTC/USDT", "0.1", "2024-05-01"),
        ]
    )
    _run(ledger, "2024-05-01", {"SPY": "500", "BTC/USDT": "60000"})
    ledger.journal_manual_order(_manual("open1", Venue.ALPACA, "SPY"), account="ops", mode="paper")
    ledger.record_order_outcome("open1", _open("open1", "3", "1"))
    ledger.journal_manual_order(_manual("fly1", Venue.ALPACA, "SPY"), account="ops", mode="live")
    alpaca = ledger.expectation(Venue.ALPACA, source="test")
    assert alpaca.positions == {"SPY": D(15)}  # A and B together; the venue holds the sum
    assert alpaca.open_orders == (
        ExpectedOrder(client_order_id="open1", symbol="SPY", side="buy", qty=D(3), filled_qty=D(1)),
    )
    assert alpaca.uncertain == {"fly1"}  # pending_submit: may or may not be at the venue
    assert alpaca.source == "test"
    ccxt = ledger.expectation("ccxt")
    assert ccxt.positions == {"BTC/USDT": D("0.1")}
    assert (ccxt.open_orders, ccxt.uncertain) == ((), frozenset())
    with pytest.raises(ValueError, match="'nasdaq' is not a valid Venue"):
        ledger.expectation("nasdaq")


def test_a_shown_url_hides_credentials() -> None:
    assert shown_url("postgresql+psycopg://u:secret@h:5432/db") == "postgresql+psycopg://…"
    assert shown_url("sqlite:///tmp/ledger.sqlite") == "sqlite:///tmp/ledger.sqlite"
