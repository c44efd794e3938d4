"""One bar (SPEC §7-§9): intents from the inbox, gating, netting, the broker, attribution, P&L.

The bar is the run's ``allocator/bar`` tag (set by the bar sensor; kept by a re-execution).
Budgets are the allocation the ledger published before the bar's session. Before anything is
planned or sent, :func:`assets.guard.require_checked_allocation` refuses an allocation whose
data-quality checks failed, in this run or in an earlier one.
"""

from decimal import Decimal
from typing import Any

import dagster as dg
import pandas as pd

from allocator.execution.bar import plan_bar, run_bar
from allocator.execution.reconcile import reconcile_at_start
from allocator.execution.records import Bar
from assets._gx import markdown_table
from assets.guard import require_checked_allocation
from assets.tags import bar_of
from resources.brokers.paper.resource import PaperBrokerResource
from resources.brokers.registry import pipeline_venues
from resources.dagster_resources import (
    AllocatorSettings,
    LedgerResource,
    PricesResource,
)

GROUP = "execution"


def _plan(
    bar: Bar,
    store: Any,
    settings: AllocatorSettings,
    market: PricesResource,
) -> Any:
    config = settings.config()
    intents = store.intents_for_bar(bar)
    budgets = store.budgets(bar.key[:10], config.execution.max_leverage)
    return plan_bar(
        intents,
        bar=bar,
        prices=market.prices(bar.key),
        positions=store.positions(),
        budgets=budgets,
        instruments=settings.instruments(),
        routing=config.routing,
        total_capital=config.allocation.total_capital,
        account=config.execution.account,
        halted_venues=store.halted_venues(),
    )


def _reconcile_venues(
    context: dg.AssetExecutionContext,
    bar: Bar,
    store: Any,
    paper: PaperBrokerResource,
    settings: AllocatorSettings,
) -> None:
    """Startup reconciliation (SPEC §9), before anything is planned: a venue that differs from
    the ledger is halted for new entries (recorded in the ledger, shown by the
    ``venues_reconciled`` check); the plan and ``run_bar`` read the halts from the ledger."""
    brokers = pipeline_venues(settings.instruments(), ledger=store, paper=paper.config())
    reconciled = reconcile_at_start(store, brokers, source=f"bar_job {bar.key}")
    for venue, outcome in sorted(reconciled.items()):
        if isinstance(outcome, str):
            context.log.info(f"reconciliation of {venue} {outcome}")
        elif not outcome.record.ok:
            context.log.warning(
                f"{venue} differs from the ledger: new entries halted "
                f"({len(outcome.record.differences)} differences)"
            )


@dg.asset(group_name=GROUP, deps=["allocations"], kinds={"pandas", "sqlite"})
def bar_intents(
    context: dg.AssetExecutionContext, ledger: LedgerResource
) -> dg.MaterializeResult[pd.DataFrame]:
    """The strategies' intents for this bar, from the ledger's inbox."""
    bar = bar_of(context)
    with ledger.open() as store:
        intents = store.intents_for_bar(bar)
    frame = pd.DataFrame(
        {
            "intent_id": [i.intent_id for i in intents],
            "strategy": [i.strategy for i in intents],
            "symbol": [i.symbol for i in intents],
            "asset_class": [i.asset_class.value for i in intents],
            "qty": [str(i.qty) for i in intents],
            "bar": [i.bar.key for i in intents],
        },
        columns=["intent_id", "strategy", "symbol", "asset_class", "qty", "bar"],
    )
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "strategies_submitted": int(frame["strategy"].nunique()),
        },
    )


@dg.asset(group_name=GROUP, kinds={"pandas"})
def gated_intents(
    context: dg.AssetExecutionContext,
    bar_intents: pd.DataFrame,
    ledger: LedgerResource,
    settings: AllocatorSettings,
    market: PricesResource,
    paper: PaperBrokerResource,
) -> dg.MaterializeResult[pd.DataFrame]:
    """Every intent's accepted quantity against its strategy's budget, with the reason of any
    cut."""
    require_checked_allocation(context)
    bar = bar_of(context)
    with ledger.open() as store:
        _reconcile_venues(context, bar, store, paper, settings)
        plan = _plan(bar, store, settings, market)
    gated = plan.gated()
    frame = pd.DataFrame(
        {
            "intent_id": [g.intent_id for g in gated],
            "strategy": [g.strategy for g in gated],
            "symbol": [g.symbol for g in gated],
            "requested_qty": [str(g.requested_qty) for g in gated],
            "accepted_qty": [str(g.accepted_qty) for g in gated],
            "reason": [None if g.reason is None else g.reason.value for g in gated],
            "routed_from": [g.routed_from for g in gated],
            "detail": [g.detail for g in gated],
        },
        columns=[
            "intent_id",
            "strategy",
            "symbol",
            "requested_qty",
            "accepted_qty",
            "reason",
            "routed_from",
            "detail",
        ],
    )
    cut = frame[frame["reason"].notna()]
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "cut_or_refused": len(cut),
            "cuts": dg.MetadataValue.md(markdown_table(cut)),
        },
    )


@dg.asset(group_name=GROUP, kinds={"pandas"})
def netted_orders(
    context: dg.AssetExecutionContext,
    gated_intents: pd.DataFrame,
    ledger: LedgerResource,
    settings: AllocatorSettings,
    market: PricesResource,
) -> dg.MaterializeResult[pd.DataFrame]:
    """One net order per symbol: the sum of the strategies' accepted quantities."""
    bar = bar_of(context)
    with ledger.open() as store:
        plan = _plan(bar, store, settings, market)
    accepted = gated_intents.assign(acc=gated_intents["accepted_qty"].map(Decimal))
    sums = accepted.groupby("symbol")["acc"].agg(lambda s: sum(s, Decimal(0)))
    instruments = settings.instruments()
    rows = []
    for o in plan.orders:
        lot = instruments[o.symbol].lot_size if o.symbol in instruments else Decimal(0)
        rows.append(
            {
                "symbol": o.symbol,
                "side": o.side.value,
                "qty": str(o.qty),
                "net_signed": str(o.side.sign * o.qty),
                "accepted_sum": str(sums.get(o.symbol, Decimal(0))),
                "lot_size": str(lot),
                "venue": o.venue.value,
                "asset_class": o.asset_class.value,
                "reference_price": str(o.reference_price),
                "notional": float(o.qty * o.reference_price),
                "client_order_id": o.client_order_id,
                "buy_qty": str(o.buy_qty),
                "sell_qty": str(o.sell_qty),
            }
        )
    columns = [
        "symbol",
        "side",
        "qty",
        "net_signed",
        "accepted_sum",
        "lot_size",
        "venue",
        "asset_class",
        "reference_price",
        "notional",
        "client_order_id",
        "buy_qty",
        "sell_qty",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    gross = sum((Decimal(q).copy_abs() for q in accepted["accepted_qty"]), Decimal(0))
    net = sum((Decimal(q) for q in frame["qty"]), Decimal(0))
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "orders": dg.MetadataValue.md(markdown_table(frame)),
            "gross_accepted_qty": float(gross),
            "net_order_qty": float(net),
            "total_notional": float(frame["notional"].sum()) if len(frame) else 0.0,
        },
    )


@dg.asset(group_name=GROUP, pool="broker", kinds={"sqlite"})
def submitted_orders(
    context: dg.AssetExecutionContext,
    netted_orders: pd.DataFrame,
    ledger: LedgerResource,
    paper: PaperBrokerResource,
    settings: AllocatorSettings,
    market: PricesResource,
) -> dg.MaterializeResult[pd.DataFrame]:
    """The bar's orders journaled and sent once (deterministic ids), with the broker's answer."""
    require_checked_allocation(context)
    bar = bar_of(context)
    config = settings.config()
    instruments = settings.instruments()
    with ledger.open() as store:
        budgets = store.budgets(bar.key[:10], config.execution.max_leverage)
        paper_config = paper.config()
        brokers = pipeline_venues(instruments, ledger=store, paper=paper_config)
        run = run_bar(
            ledger=store,
            brokers=brokers,
            bar=bar,
            intents=store.intents_for_bar(bar),
            prices=market.prices(bar.key),
            budgets=budgets,
            instruments=instruments,
            routing=config.routing,
            total_capital=config.allocation.total_capital,
            account=config.execution.account,
            cash_quantum=config.execution.cash_quantum,
            fee_model=paper_config.fees.fee,
            lookup_delay_s=0.05,
        )
        journal = store.orders(bar)
    frame = pd.DataFrame(
        [
            {
                "client_order_id": o["client_order_id"],
                "symbol": o["symbol"],
                "side": o["side"],
                "qty": str(o["qty"]),
                "venue": o["venue"],
                "state": o["state"],
                "filled_qty": str(o["filled_qty"]),
                "avg_price": None if o["avg_price"] is None else str(o["avg_price"]),
                "fee": str(o["fee"]),
            }
            for o in journal
        ],
        columns=[
            "client_order_id",
            "symbol",
            "side",
            "qty",
            "venue",
            "state",
            "filled_qty",
            "avg_price",
            "fee",
        ],
    )
    planned = set(netted_orders["client_order_id"])
    if planned != set(frame["client_order_id"]):
        raise dg.Failure(
            f"bar {bar}: journaled orders differ from the netted orders",
            metadata={"planned": sorted(planned), "journaled": sorted(frame["client_order_id"])},
        )
    placed = sum(1 for s in run.submissions if s.placed_by_this_call)
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "placed_by_this_run": placed,
            "already_at_broker": len(frame) - placed,
            "bar_already_recorded": run.outcome is None,
            "orders": dg.MetadataValue.md(markdown_table(frame)),
        },
    )


@dg.asset(group_name=GROUP, kinds={"sqlite"})
def fills(
    context: dg.AssetExecutionContext, submitted_orders: pd.DataFrame, ledger: LedgerResource
) -> dg.MaterializeResult[pd.DataFrame]:
    """The broker's fills of this bar's orders, as recorded (once) in the ledger."""
    bar = bar_of(context)
    cids = set(submitted_orders["client_order_id"])
    with ledger.open() as store:
        recorded = [f for f in store.broker_fills() if f.client_order_id in cids]
    frame = pd.DataFrame(
        [
            {
                "fill_id": f.fill_id,
                "client_order_id": f.client_order_id,
                "symbol": f.symbol,
                "side": f.side.value,
                "qty": str(f.qty),
                "price": str(f.price),
                "fee": str(f.fee),
            }
            for f in recorded
        ],
        columns=["fill_id", "client_order_id", "symbol", "side", "qty", "price", "fee"],
    )
    fees = sum((Decimal(x) for x in frame["fee"]), Decimal(0))
    return dg.MaterializeResult(
        value=frame,
        metadata={"dagster/row_count": len(frame), "bar": bar.key, "fees_paid": float(fees)},
    )


@dg.asset(group_name=GROUP, kinds={"sqlite"})
def attribution(
    context: dg.AssetExecutionContext, fills: pd.DataFrame, ledger: LedgerResource
) -> dg.MaterializeResult[pd.DataFrame]:
    """Each strategy's virtual fills of this bar (crossed internally or from the broker)."""
    bar = bar_of(context)
    with ledger.open() as store:
        virtual = store.virtual_fills(bar)
        savings = store.savings(bar)
    frame = pd.DataFrame(
        [
            {
                "strategy": v.strategy,
                "symbol": v.symbol,
                "qty": str(v.qty),
                "price": str(v.price),
                "fee": str(v.fee),
                "internal": v.internal,
                "cash": str(v.cash),
            }
            for v in virtual
        ],
        columns=["strategy", "symbol", "qty", "price", "fee", "internal", "cash"],
    )
    crossed = sum(
        (Decimal(q).copy_abs() for q, i in zip(frame["qty"], frame["internal"], strict=True) if i),
        Decimal(0),
    )
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "netting_savings": float(savings or 0),
            "internally_crossed_qty": float(crossed / 2),
            "fills": dg.MetadataValue.md(markdown_table(frame)),
        },
    )


@dg.asset(group_name=GROUP, kinds={"pandas"})
def pnl(
    context: dg.AssetExecutionContext,
    attribution: pd.DataFrame,
    ledger: LedgerResource,
    market: PricesResource,
) -> dg.MaterializeResult[pd.DataFrame]:
    """Each strategy's cash, positions at this bar's prices and mark-to-market P&L."""
    bar = bar_of(context)
    prices = market.prices(bar.key)
    with ledger.open() as store:
        cash = store.cash()
        positions = store.positions()
    names = sorted(set(cash) | {s for s, _ in positions})
    rows = []
    for name in names:
        held = {m: q for (s, m), q in positions.items() if s == name}
        value = sum((q * prices[m] for m, q in held.items() if m in prices), Decimal(0))
        unpriced = sorted(m for m in held if m not in prices)
        rows.append(
            {
                "strategy": name,
                "cash": float(cash.get(name, Decimal(0))),
                "position_value": float(value),
                "pnl": float(cash.get(name, Decimal(0)) + value),
                "unpriced_symbols": ",".join(unpriced),
            }
        )
    frame = pd.DataFrame(
        rows, columns=["strategy", "cash", "position_value", "pnl", "unpriced_symbols"]
    )
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "pnl_total": float(frame["pnl"].sum()) if len(frame) else 0.0,
            "pnl": dg.MetadataValue.md(markdown_table(frame)),
        },
    )
