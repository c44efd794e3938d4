"""The unified P&L dashboard, regenerated from the ledger (``allocator.dashboard`` draws it).

:func:`ledger_history` reads what the ledger recorded into the pure
:class:`~allocator.dashboard.LedgerHistory`; the ``dashboard`` asset writes the HTML file and
puts its key figures in the asset's metadata (numbers Dagster plots over time, and the
per-strategy P&L and comparison tables). It reads everything from the ledger, so it can run
after a rebalance or after a bar.
"""

import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from allocator.config import AllocatorConfig
from allocator.dashboard import (
    BrokerFillRow,
    LedgerHistory,
    RiskView,
    VirtualFillRow,
    book_series,
    build_dashboard,
    summary_frames,
)
from allocator.execution.instruments import InstrumentTable
from allocator.execution.orders import FeeKind, Side
from allocator.execution.routing import venue_of
from assets._gx import markdown_table
from resources.dagster_resources import AllocatorSettings, LedgerResource, PricesResource

GROUP = "reporting"


LAST_DENIALS = 50
"""How many of the latest risk denials the dashboard lists."""


def risk_view(store: Any) -> RiskView:
    """The trading states and the latest risk denials (docs/spec-12-risk.md) of ``store``."""
    status = store.trading_status()

    def text(value: Decimal | None) -> str:
        return "" if value is None else format(value, "f")

    return RiskView(
        trading_state=status.book.value,
        venue_states={v.value: s.value for v, s in status.venues.items()},
        detail=status.detail("book"),
        denials=tuple(
            {
                "bar": d.bar,
                "intent_id": d.intent_id,
                "strategy": d.strategy,
                "symbol": d.symbol,
                "reason": d.reason.value,
                "limit": text(d.limit),
                "value": text(d.value),
                "detail": d.detail,
            }
            for d in store.risk_denials(limit=LAST_DENIALS)
        ),
        counts=store.risk_denial_counts(),
    )


def ledger_history(
    store: Any,
    prices_of: Callable[[str], Mapping[str, Decimal]],
    instruments: InstrumentTable,
    config: AllocatorConfig,
) -> LedgerHistory:
    """Everything the dashboard needs from the ledger ``store`` (a ``resources.ledger.Ledger``);
    ``prices_of(bar)`` gives a bar's reference prices."""
    bars = tuple(store.recorded_bars())
    virtual = tuple(
        VirtualFillRow(
            bar=bar,
            strategy=f.strategy,
            symbol=f.symbol,
            qty=f.position_change,  # a fee taken in the base coin came out of the position
            price=f.price,
            cash=f.cash,
            internal=f.internal,
        )
        for bar, fills in store.virtual_fills_by_bar().items()
        for f in fills
    )
    broker = []
    for bar, fills in store.broker_fills_by_bar().items():
        for f in fills:
            # What the fill did to the venue's position and cash: a fee in the base coin came
            # out of the position, one in a third currency (BNB) out of neither.
            signed = f.qty if f.side is Side.BUY else -f.qty
            fee = f.fee if f.fee_kind is FeeKind.QUOTE else Decimal(0)
            broker.append(
                BrokerFillRow(
                    bar=bar, symbol=f.symbol, qty=f.position_change, cash=-signed * f.price - fee
                )
            )
    savings = {bar: (s.would_pay, s.fee_paid) for bar, s in store.savings_by_bar().items()}
    refusals = store.refusal_counts()
    allocations = pd.DataFrame(
        [
            {
                "date": a.date,
                "strategy": a.strategy,
                "capital": float(a.capital),
                "final_weight": a.final_weight,
                "breaker_state": a.breaker_state,
                "benched": a.benched,
            }
            for a in store.allocations()
        ],
        columns=["date", "strategy", "capital", "final_weight", "breaker_state", "benched"],
    )
    events = pd.DataFrame(
        [
            {"date": e.date, "kind": e.kind, "strategy": e.strategy or "", "detail": e.detail}
            for e in store.events()
        ],
        columns=["date", "kind", "strategy", "detail"],
    )
    returns = pd.DataFrame(
        [{"date": r.date, "strategy": r.strategy, "return": r.value} for r in store.returns()],
        columns=["date", "strategy", "return"],
    ).astype({"return": "float64"})
    symbols = {x.symbol for x in virtual} | {x.symbol for x in broker}
    venues = {m: venue_of(instruments[m]).value if m in instruments else "unknown" for m in symbols}
    return LedgerHistory(
        bars=bars,
        virtual_fills=virtual,
        broker_fills=tuple(broker),
        savings=savings,
        prices={b: prices_of(b) for b in bars},
        venues=venues,
        allocations=allocations,
        events=events,
        returns=returns,
        refusals=refusals,
        total_capital=float(config.allocation.total_capital),  # the dashboard's maths is float64
        risk=risk_view(store),
    )


class DashboardConfig(dg.Config):
    """Where to write the HTML (empty: the settings' ``dashboard_path``, i.e.
    ``ALLOCATOR_DASHBOARD`` or ``out/dashboard.html`` in the project)."""

    path: str = ""


MIN_BARS = 3


@dg.asset(group_name=GROUP, deps=["allocations", "pnl"], kinds={"plotly", "html"})
def dashboard(
    context: dg.AssetExecutionContext,
    config: DashboardConfig,
    ledger: LedgerResource,
    settings: AllocatorSettings,
    market: PricesResource,
) -> dg.MaterializeResult[None]:
    """One offline HTML page: book vs benchmarks, attributed P&L, allocations, rules, netting."""
    allocator_config = settings.config()
    with ledger.open() as store:
        history = ledger_history(store, market.prices, settings.instruments(), allocator_config)
    if len(history.bars) < MIN_BARS:
        # Before the third bar there is no curve to draw (returns, volatility and Sharpe need
        # three points): say so rather than fail the rebalance or the bar that ran it.
        context.log.info(f"{len(history.bars)} bar(s) recorded: the dashboard starts at {MIN_BARS}")
        return dg.MaterializeResult(
            metadata={"bars": len(history.bars), "status": f"fewer than {MIN_BARS} bars"}
        )
    html = build_dashboard(history, allocator_config, title="Allocator: unified P&L")
    path = Path(config.path or settings.dashboard_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    series = book_series(history)
    pnl, perf = summary_frames(history, series)
    book = perf.iloc[0]
    context.log.info(f"dashboard of {len(history.bars)} bars written to {path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "bars": len(history.bars),
            "last_bar": history.bars[-1],
            "trading_state": history.risk.trading_state if history.risk else "active",
            "risk_denials_total": sum(history.risk.counts.values()) if history.risk else 0,
            "book_pnl": float(series.book_pnl[-1]),
            "book_equity": float(book["final_equity"]),
            "book_sharpe": float(book["sharpe"]),
            "book_max_drawdown": float(book["max_drawdown"]),
            "netting_savings_total": float(series.savings_cum[-1]),
            "fees_paid_total": float(series.fees_cum[-1]),
            "attribution_unexplained": float(series.unexplained),
            "attributed_pnl": dg.MetadataValue.md(
                markdown_table(pnl.astype({"attributed_pnl": str}))
            ),
            "book_vs_benchmarks": dg.MetadataValue.md(markdown_table(perf)),
        }
    )
