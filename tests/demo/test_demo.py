"""The demo on a short window: every mechanic fired on real prices, attribution exact, and the
final session materialised through Dagster."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from allocator.dashboard import book_series, summary_frames
from allocator.execution.records import Bar
from demo.marketdata import load_sp500
from demo.runner import DEFAULT_GATEWAY_BARS, DEFAULT_GATEWAY_STRATEGY, mechanics, summary_text

from .conftest import SHORT_END, SHORT_START

CENT = Decimal("0.01")


def test_every_mechanic_fired_in_the_window(short_demo: Any) -> None:
    result, _, _ = short_demo
    m = mechanics(result.history, SHORT_START)
    assert m["bench"] >= 1
    assert m["readmit"] >= 1
    assert m["half"] >= 1
    assert m["halt"] >= 1
    assert m["halt_released"] >= 1
    assert m["netting_bars_with_savings"] >= 1
    series = book_series(result.history)
    assert series.savings_cum[-1] > 0
    assert series.crossed_cum[-1] > 0
    # Bars: every session of the window, first and last included.
    assert result.history.bars[0] == SHORT_START
    assert result.history.bars[-1] == SHORT_END


def _ledger_figures(url: str) -> tuple[dict[str, Decimal], Decimal]:
    """Per-strategy P&L from the ledger's own running cash and positions, and the book's P&L
    from the broker's fills, both marked at the last bar's close from the bundle (independent
    of the dashboard's bar-by-bar replay of the fills)."""
    from resources.ledger import Ledger

    market = load_sp500()
    last = market.position(SHORT_END)
    price = {s: market.price_text(last, m) for m, s in enumerate(market.symbols)}
    store = Ledger(url)
    try:
        cash = store.cash()
        positions = store.positions()
        per_strategy = {
            s: cash.get(s, Decimal(0))
            + sum((q * price[m] for (x, m), q in positions.items() if x == s), Decimal(0))
            for s in {*cash, *(x for x, _ in positions)}
        }
        rows = store.broker_fills()
    finally:
        store.close()
    book_cash = Decimal(0)
    book_pos: dict[str, Decimal] = {}
    for r in rows:
        signed = r.qty if r.side == "buy" else -r.qty
        book_cash += -signed * r.price - r.fee
        book_pos[r.symbol] = book_pos.get(r.symbol, Decimal(0)) + signed
    book = book_cash + sum((q * price[m] for m, q in book_pos.items()), Decimal(0))
    return per_strategy, book


def test_attributed_pnl_sums_to_the_book_to_the_cent(short_demo: Any) -> None:
    result, _, _ = short_demo
    per_strategy, book = _ledger_figures(result.ledger_url)
    assert len(per_strategy) == 6
    assert sum(per_strategy.values(), Decimal(0)).quantize(CENT) == book.quantize(CENT)
    assert book != 0  # the book traded
    series = book_series(result.history)
    assert series.book_pnl[-1].quantize(CENT) == book.quantize(CENT)
    for name, value in per_strategy.items():
        assert series.strategy_pnl[name][-1].quantize(CENT) == value.quantize(CENT), name
    assert series.unexplained == 0
    # The printed table (rounded to cents) adds up to the book's line.
    pnl, perf = summary_frames(result.history, series)
    rows = dict(zip(pnl["strategy"], pnl["attributed_pnl"], strict=True))
    totals = {"sum of strategies", "book (broker fills)"}
    strategies = [v for k, v in rows.items() if k not in totals]
    assert sum(strategies, Decimal(0)) == rows["book (broker fills)"] == book.quantize(CENT)
    assert list(perf["portfolio"])[:2] == ["book", "equal weight"]


def test_final_session_materialised_through_dagster(short_demo: Any) -> None:
    import dagster as dg

    result, instance, _ = short_demo
    assert len(result.dagster_runs) >= 2
    for run_id in result.dagster_runs:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        assert run.status == dg.DagsterRunStatus.SUCCESS
    for key in ("allocations", "pnl", "submitted_orders", "dashboard"):
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        assert event is not None, key
    meta = instance.get_latest_materialization_event(dg.AssetKey("dashboard")).asset_materialization
    assert meta is not None
    assert meta.metadata["last_bar"].value == SHORT_END
    assert meta.metadata["attribution_unexplained"].value == 0.0
    assert result.dashboard is not None
    assert result.dashboard.stat().st_size > 1_000_000


def test_summary_names_every_section(short_demo: Any) -> None:
    result, _, _ = short_demo
    text = summary_text(result, SHORT_START)
    for needle in (
        "Final allocation",
        "half->halted",
        " bench ",
        " readmit ",
        "sum of strategies",
        "book (broker fills)",
        "best single (",
        "Dashboard: ",
        f"strategy {DEFAULT_GATEWAY_STRATEGY} traded through the gateway",
    ):
        assert needle in text, needle


def test_the_last_bars_of_one_strategy_went_through_the_gateway(short_demo: Any) -> None:
    """The door was used: a bot in another process got a token, and every intent and fill of
    its strategy in the door's bars is one the gateway accepted from it and served back."""
    from resources.ledger import Ledger

    result, _, _ = short_demo
    door = result.gateway
    assert door is not None
    assert door.strategy == DEFAULT_GATEWAY_STRATEGY
    assert door.bot_pid not in (0, os.getpid())  # a separate process
    bars = [b for b in result.history.bars if door.first_bar <= b <= door.last_bar]
    assert len(bars) == DEFAULT_GATEWAY_BARS
    assert bars[-1] == SHORT_END  # the Dagster session's bar too
    before_first = result.history.bars[result.history.bars.index(bars[0]) - 1]
    store = Ledger(result.ledger_url)
    try:
        stored = {
            i.intent_id
            for b in bars
            for i in store.intents_for_bar(Bar(b))
            if i.strategy == door.strategy
        }
        fills = store.strategy_fills(door.strategy, before_first)
        live = {s for kind, s, _, _, revoked in store.token_holders() if revoked is None}
    finally:
        store.close()
    assert door.intents, "the bot traded in those bars"
    assert stored == set(door.intents)  # each accepted by the gateway (from its answers)
    assert fills  # and filled
    assert sorted(door.fills) == sorted((f.bar, f.symbol) for f in fills)  # read over HTTP
    assert door.strategy in live  # its token, from `allocator strategy add`
