"""One bar (SPEC §7-§9): the sealed inbox, the frozen plan, the broker, attribution, P&L.

The bar is the run's ``allocator/bar`` tag (set by the bar sensor; kept by a re-execution).
Budgets are the allocation the ledger published before the bar's session. Before anything is
planned or sent, :func:`assets.guard.require_checked_allocation` refuses an allocation whose
data-quality checks failed, in this run or in an earlier one.

The chain (docs/decisions/0012-live-bar-path.md): ``bar_intents`` seals the bar (the sensor
sealed it already when it requested the run; a bar launched by hand is sealed here) and shows
its sealed inbox and the intents refused ``late``; ``bar_plan`` reconciles the venues and
freezes the plan once (:func:`~allocator.execution.bar.load_or_freeze_plan`), or rebuilds the
frozen one; ``gated_intents`` and ``netted_orders`` show that stored plan (never a plan
recomputed from the live inbox); ``submitted_orders`` runs
:func:`~allocator.execution.bar.run_bar`, which loads the same frozen plan, and shows each
order's venue mode (``orders.mode``). So a re-execution of a failed run, from any step, sends
the stored orders at most once.

Crash tests inject a failure inside ``run_bar`` through the environment of the run
(:func:`_checkpoint_hook`, test-only: ``ALLOCATOR_BAR_CHECKPOINT=kill@ack:`` SIGKILLs the run
worker after the first acknowledgement is journaled, ``fail@NAME`` raises, ``BAR=kill@NAME``
applies to one bar only; ``bar_plan`` passes it for ``sealed`` and ``planned``,
``submitted_orders`` for the rest; ``ALLOCATOR_BAR_CHECKPOINT_ONCE`` names a marker file so
that it fires once). Unset, nothing is called.
"""

import os
import signal
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from allocator.errors import InputError, PlanMismatchError
from allocator.execution.bar import BarPlan, load_or_freeze_plan, run_bar
from allocator.execution.ledger import BarState
from allocator.execution.orders import FeeKind
from allocator.execution.reconcile import reconcile_at_start
from allocator.execution.records import Bar
from assets._gx import markdown_table
from assets.guard import require_checked_allocation
from assets.risk import risk_metadata
from assets.tags import bar_of, lease_label
from assets.venues import bar_venues
from resources.brokers.paper.resource import PaperBrokerResource
from resources.dagster_resources import (
    AllocatorSettings,
    LedgerResource,
    PricesResource,
)

GROUP = "execution"
CHECKPOINT_ENV = "ALLOCATOR_BAR_CHECKPOINT"
CHECKPOINT_ONCE_ENV = "ALLOCATOR_BAR_CHECKPOINT_ONCE"


def _no_checkpoint(_: str) -> None:
    return None


def _checkpoint_hook(bar: Bar | None = None) -> Callable[[str], None]:
    """A failure injected at a named step of ``run_bar`` (test-only, for the crash tests; see
    the module doc). Unset, it is inert: nothing is called.

    ``ALLOCATOR_BAR_CHECKPOINT`` is one entry or several separated by ``;``, each
    ``kill@NAME`` (SIGKILL this process) or ``fail@NAME`` (raise), ``NAME`` a checkpoint or
    its prefix (``ack:`` for the first acknowledgement), optionally scoped to one bar as
    ``BAR=kill@NAME`` (``2020-01-03=kill@journaled``: only that bar's runs fire it; one
    daemon can so kill each of several bars at a step of its own). An unscoped entry applies
    to every bar; the first entry that applies to ``bar`` is used. With
    ``ALLOCATOR_BAR_CHECKPOINT_ONCE`` = a file path, it fires only while that file does not
    exist (and creates it first), so the retry runs through; a bar-scoped entry uses that path
    with ``.BAR`` appended (``:`` of an intraday bar as ``-``), one marker per bar."""
    spec = os.environ.get(CHECKPOINT_ENV, "")
    if not spec:
        return _no_checkpoint
    chosen: tuple[str, str, str] | None = None  # (action, name, scope)
    for entry in (e.strip() for e in spec.split(";")):
        scope, sep, rule = entry.rpartition("=") if "=" in entry else ("", "", entry)
        action, _, name = rule.partition("@")
        if action not in ("kill", "fail") or not name or (sep and not scope):
            raise dg.Failure(
                f"{CHECKPOINT_ENV} entries must be [BAR=]kill@NAME or [BAR=]fail@NAME, "
                f"got {entry!r} in {spec!r}"
            )
        if chosen is None and (not scope or (bar is not None and scope == bar.key)):
            chosen = (action, name, scope)
    if chosen is None:
        return _no_checkpoint
    action, name, scope = chosen
    once = os.environ.get(CHECKPOINT_ONCE_ENV, "")
    if once and scope:
        once = f"{once}.{scope.replace(':', '-')}"

    def hook(step: str) -> None:
        if not step.startswith(name):
            return
        if once:
            marker = Path(once)
            if marker.exists():
                return
            marker.write_text(f"{action}@{step} pid {os.getpid()}\n", encoding="utf-8")
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected failure at checkpoint {step} ({CHECKPOINT_ENV})")

    return hook


def _stored_plan(bar: Bar, store: Any, settings: AllocatorSettings) -> BarPlan:
    """The bar's plan rebuilt from its frozen inputs (never the live inbox); a bar with no
    frozen plan fails the step (``bar_plan`` freezes it)."""
    if store.frozen_plan(bar) is None:
        raise dg.Failure(f"bar {bar} has no frozen plan: materialize bar_plan first")
    config = settings.config()
    try:
        return load_or_freeze_plan(
            store,
            bar,
            prices=None,
            budgets=None,
            instruments=settings.instruments(),
            routing=config.routing,
            total_capital=config.allocation.total_capital,
            account=config.execution.account,
        )
    except PlanMismatchError as exc:
        raise dg.Failure(str(exc)) from exc


def _orders_frame(plan: BarPlan, settings: AllocatorSettings) -> pd.DataFrame:
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
    return pd.DataFrame(rows, columns=ORDER_COLUMNS)


def _gated_frame(plan: BarPlan) -> pd.DataFrame:
    gated = plan.gated()
    return pd.DataFrame(
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


def _lifecycle_metadata(store: Any, bar: Bar) -> dict[str, Any]:
    """The bar's lifecycle row and the lane's halt, as run metadata (docs/decisions/0012)."""
    status = store.bar_status(bar)
    halt = store.lane_halt()
    out: dict[str, Any] = {"lane_halted": halt is not None}
    if halt is not None:
        out["lane_halt_reason"] = halt.reason
    if status is None:
        out["bar_state"] = "not sealed"
        return out
    out.update(
        {
            "bar_state": status.state.value,
            "sealed_by": status.sealed_by,
            "sealed_at": status.sealed_at.isoformat(),
            "failed_attempts": status.attempts,
        }
    )
    if status.last_error:
        out["last_error"] = status.last_error
    return out


ORDER_COLUMNS = [
    "symbol",
    "side",
    "qty",
    "net_signed",
    "lot_size",
    "venue",
    "asset_class",
    "reference_price",
    "notional",
    "client_order_id",
    "buy_qty",
    "sell_qty",
]


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
    brokers = bar_venues(settings, store, paper)
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
    """The bar's sealed inbox: its intents once the bar is sealed (by the bar sensor when it
    requested the run; here, ``by="bar_job"``, for a bar launched by hand). A later intent for
    it is refused ``late`` (SPEC §7 sealing)."""
    bar = bar_of(context)
    with ledger.open() as store:
        sealed = store.seal_bar(bar, by="bar_job")
        if sealed.state is BarState.ABANDONED:
            raise dg.Failure(
                f"bar {bar} was abandoned by {sealed.abandoned_by}: {sealed.abandoned_reason}; "
                "nothing of it is planned or sent"
            )
        intents = store.intents_for_bar(bar)
        late = store.refusals(bar)
        lifecycle = _lifecycle_metadata(store, bar)
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
    refused = pd.DataFrame(
        [{"intent_id": r.key, "reason": r.reason.value, "detail": r.detail} for r in late],
        columns=["intent_id", "reason", "detail"],
    )
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "strategies_submitted": int(frame["strategy"].nunique()),
            "refused_late": len(refused),
            "late_refusals": dg.MetadataValue.md(markdown_table(refused)),
            **lifecycle,
        },
    )


@dg.asset(group_name=GROUP, kinds={"pandas", "sqlite"})
def bar_plan(
    context: dg.AssetExecutionContext,
    bar_intents: pd.DataFrame,
    ledger: LedgerResource,
    settings: AllocatorSettings,
    market: PricesResource,
    paper: PaperBrokerResource,
) -> dg.MaterializeResult[pd.DataFrame]:
    """The bar's one plan, frozen in the ledger (docs/decisions/0012-live-bar-path.md): the
    orders planned once from the sealed inbox. Every later step and every re-run shows and
    sends this stored plan (rebuilt from its frozen inputs, its digest checked)."""
    require_checked_allocation(context)
    bar = bar_of(context)
    config = settings.config()
    with ledger.open() as store:
        frozen_before = store.frozen_plan(bar) is not None
        if not frozen_before:
            # Not planned yet: the halts a reconciliation finds now go into the plan.
            _reconcile_venues(context, bar, store, paper, settings)
        try:
            plan = load_or_freeze_plan(
                store,
                bar,
                prices=market.prices(bar.key) if not frozen_before else None,
                budgets=store.budgets(bar.key[:10], config.execution.max_leverage),
                instruments=settings.instruments(),
                routing=config.routing,
                total_capital=config.allocation.total_capital,
                account=config.execution.account,
                sealed_by="bar_job",
                checkpoint=_checkpoint_hook(bar),  # ``sealed``, ``planned``
                risk=config.risk,
                price_times=market.price_times(bar.key) if not frozen_before else None,
            )
        except PlanMismatchError as exc:
            raise dg.Failure(str(exc)) from exc
        stored = store.frozen_plan(bar)
        lifecycle = _lifecycle_metadata(store, bar)
        risk = risk_metadata(plan.risk_denials(), store.trading_status())
    assert stored is not None
    frame = _orders_frame(plan, settings)
    gated = _gated_frame(plan)
    cut = gated[gated["reason"].notna()]
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "plan_digest": stored[1],
            "frozen_by_this_run": not frozen_before,
            "intents": len(gated),
            "cut_or_refused": len(cut),
            "orders": dg.MetadataValue.md(markdown_table(frame)),
            "cuts": dg.MetadataValue.md(markdown_table(cut)),
            **risk,
            **lifecycle,
        },
    )


@dg.asset(group_name=GROUP, kinds={"pandas"})
def gated_intents(
    context: dg.AssetExecutionContext,
    bar_plan: pd.DataFrame,
    ledger: LedgerResource,
    settings: AllocatorSettings,
) -> dg.MaterializeResult[pd.DataFrame]:
    """Every intent's accepted quantity against its strategy's budget, with the reason of any
    cut, as the stored plan decided it."""
    bar = bar_of(context)
    with ledger.open() as store:
        plan = _stored_plan(bar, store, settings)
        digest = store.frozen_plan(bar)[1]
    frame = _gated_frame(plan)
    cut = frame[frame["reason"].notna()]
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "plan_digest": digest,
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
) -> dg.MaterializeResult[pd.DataFrame]:
    """One net order per symbol: the sum of the strategies' accepted quantities (the stored
    plan's orders)."""
    bar = bar_of(context)
    with ledger.open() as store:
        plan = _stored_plan(bar, store, settings)
        digest = store.frozen_plan(bar)[1]
    accepted = gated_intents.assign(acc=gated_intents["accepted_qty"].map(Decimal))
    sums = accepted.groupby("symbol")["acc"].agg(lambda s: sum(s, Decimal(0)))
    frame = _orders_frame(plan, settings)
    frame.insert(
        4,
        "accepted_sum",
        [str(sums.get(symbol, Decimal(0))) for symbol in frame["symbol"]],
    )
    gross = sum((Decimal(q).copy_abs() for q in accepted["accepted_qty"]), Decimal(0))
    net = sum((Decimal(q) for q in frame["qty"]), Decimal(0))
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "plan_digest": digest,
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
    """The stored plan's orders journaled and sent once (deterministic ids), followed to the
    fill deadline, every acknowledgement and fill journaled as it arrives, the bar settled."""
    require_checked_allocation(context)
    bar = bar_of(context)
    config = settings.config()
    instruments = settings.instruments()
    hook = _checkpoint_hook(bar)
    with ledger.open() as store:
        paper_config = paper.config()
        brokers = bar_venues(settings, store, paper)
        try:
            run = run_bar(
                ledger=store,
                brokers=brokers,
                bar=bar,
                prices=None,  # the frozen plan's (bar_plan froze it)
                budgets=None,
                instruments=instruments,
                routing=config.routing,
                total_capital=config.allocation.total_capital,
                account=config.execution.account,
                cash_quantum=config.execution.cash_quantum,
                fee_model=paper_config.fees.fee,
                lookup_delay_s=0.05,
                fill_timeout_s=config.execution.fill_timeout_s,
                poll_s=config.execution.poll_s,
                sealed_by="bar_job",
                runner=lease_label(context.run.run_id),
                checkpoint=hook,
                risk=config.risk,
            )
        except (PlanMismatchError, InputError) as exc:
            raise dg.Failure(str(exc)) from exc
        journal = store.orders(bar)
        lifecycle = _lifecycle_metadata(store, bar)
        gate = store.send_gate(bar)
        sent_denials = store.risk_denials(bar)
    frame = pd.DataFrame(
        [
            {
                "client_order_id": o["client_order_id"],
                "symbol": o["symbol"],
                "side": o["side"],
                "qty": str(o["qty"]),
                "venue": o["venue"],
                "mode": o.get("mode"),
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
            "mode",
            "state",
            "filled_qty",
            "avg_price",
            "fee",
        ],
    )
    # The orders sent: the stored plan's, or fewer when a trading state set after the plan was
    # frozen (an operator's halt) cut them at send time (docs/spec-12-risk.md §12.6).
    planned = set(netted_orders["client_order_id"])
    if gate is not None:
        recorded_before = run.outcome is None
        planned = (
            set(frame["client_order_id"])
            if recorded_before
            else {o.client_order_id for o in run.orders}
        )
    if planned != set(frame["client_order_id"]):
        raise dg.Failure(
            f"bar {bar}: journaled orders differ from the netted orders",
            metadata={"planned": sorted(planned), "journaled": sorted(frame["client_order_id"])},
        )
    placed = sum(1 for s in run.submissions if s.placed_by_this_call)
    modes = {f"{v} ({m})" for v, m in zip(frame["venue"], frame["mode"], strict=True)}
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "bar": bar.key,
            "placed_by_this_run": placed,
            "already_at_broker": len(frame) - placed,
            "bar_already_recorded": run.outcome is None,
            "venue_modes": ", ".join(sorted(modes)) or "no orders",
            "send_gate": "none"
            if gate is None
            else f"{gate.trading_state} ({gate.state_detail})"
            + "".join(f"; {v} {x}" for v, x in sorted(gate.venue_states.items())),
            "risk_denials_at_send": sum(1 for d in sent_denials if d.stage == "send"),
            "orders": dg.MetadataValue.md(markdown_table(frame)),
            **lifecycle,
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
                "fee_currency": f.fee_currency or "",  # empty: the quote currency
            }
            for f in recorded
        ],
        columns=[
            "fill_id",
            "client_order_id",
            "symbol",
            "side",
            "qty",
            "price",
            "fee",
            "fee_currency",
        ],
    )
    # quote-currency fees only: a fee in the base coin or BNB is not an amount of dollars
    fees = sum((f.fee for f in recorded if f.fee_kind is FeeKind.QUOTE), Decimal(0))
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
