"""The daily rule set (SPEC §1-§6): returns, vols, weights, correlation flags, breaker, allocation.

One replay of the stored history (``allocator.replay``: the same engine as the CLI) decides the
four rule outputs; the last session is "today". ``allocations`` publishes today's capital per
strategy to the ledger, which the per-bar job reads as budgets.
"""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from allocator.data import load_returns
from allocator.execution.inbox import ReturnRow
from allocator.rebalance import allocation_frame, decide, published_rows, returns_frame
from allocator.states import BreakerState
from assets._gx import markdown_table
from assets.tags import SESSION_TAG
from resources.dagster_resources import AllocatorSettings, LedgerResource

GROUP = "rules"


@dg.asset(group_name=GROUP, kinds={"pandas", "sqlite"})
def strategy_returns(
    context: dg.AssetExecutionContext, ledger: LedgerResource
) -> dg.MaterializeResult[pd.DataFrame]:
    """Daily return per (session, strategy) from the ledger (the inbox file ingested first)."""
    with ledger.open() as store:
        ingested = 0
        if ledger.returns_source:
            f = load_returns(ledger.returns_source)
            rows = [
                ReturnRow(
                    date=str(d)[:10], strategy=str(s), value=None if np.isnan(r) else float(r)
                )
                for d, s, r in zip(f.dates, f.strategies, f.ret, strict=True)
            ]
            ingested = store.submit_returns(rows, source=ledger.returns_source).accepted
        stored = store.returns()
    frame = returns_frame(stored, context.run.tags.get(SESSION_TAG))
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "strategies": int(frame["strategy"].nunique()),
            "first_date": str(frame["date"].min()) if len(frame) else "",
            "last_date": str(frame["date"].max()) if len(frame) else "",
            "missing_values": int(frame["return"].isna().sum()),
            "ingested_rows": ingested,
        },
    )


_OUTS = {
    "strategy_vols": (
        "60-session annualised vol and 90-session Sharpe per strategy, today.",
        {"strategy_returns"},
    ),
    "risk_parity_weights": (
        "Inverse-vol base weights over the eligible strategies (recomputed every 60 sessions "
        "and on bench changes).",
        {"strategy_returns", "strategy_vols"},
    ),
    "correlation_flags": (
        "90-session pair correlations with breach/calm counters and flags, today.",
        {"strategy_returns", "risk_parity_weights"},
    ),
    "breaker_multipliers": (
        "Drawdown breaker state and multiplier per strategy, today.",
        {"strategy_returns", "correlation_flags"},
    ),
    "rule_events": (
        "Every bench, readmit, breaker and rebalance event of the replayed history.",
        {"strategy_returns", "strategy_vols"},
    ),
}


@dg.multi_asset(
    outs={
        name: dg.AssetOut(group_name=GROUP, description=doc, kinds={"pandas"})
        for name, (doc, _) in _OUTS.items()
    },
    internal_asset_deps={name: {dg.AssetKey(d) for d in deps} for name, (_, deps) in _OUTS.items()},
    can_subset=False,
    ins={"returns": dg.AssetIn("strategy_returns")},
)
def rule_set(
    context: dg.AssetExecutionContext, returns: pd.DataFrame, settings: AllocatorSettings
) -> Any:
    """One replay of the history decides vols, weights, flags and breaker states (SPEC §2-§6)."""
    decision = decide(returns, settings.config())
    day, n = decision.session, len(decision.breaker)
    vols, weights, flags = decision.vols, decision.weights, decision.flags
    breaker, events = decision.breaker, decision.events
    vol_now = weights["vol_60d"].to_numpy()
    eligible = weights["eligible"].to_numpy()
    states = breaker["breaker_state"].tolist()
    context.log.info(f"replayed {decision.sessions} sessions x {n} strategies through {day}")
    yield dg.MaterializeResult(
        asset_key="strategy_vols",
        value=vols,
        metadata={
            "dagster/row_count": len(vols),
            "session": day,
            "vols": dg.MetadataValue.md(markdown_table(vols)),
            "strategies_with_vol": int(np.isfinite(vol_now).sum()),
        },
    )
    yield dg.MaterializeResult(
        asset_key="risk_parity_weights",
        value=weights,
        metadata={
            "dagster/row_count": len(weights),
            "weights": dg.MetadataValue.md(markdown_table(weights)),
            "eligible": int(eligible.sum()),
            "last_recompute": decision.last_recompute,
            "last_recompute_kind": decision.last_recompute_kind,
            "sessions_since_recompute": decision.sessions_since_recompute,
        },
    )
    yield dg.MaterializeResult(
        asset_key="correlation_flags",
        value=flags,
        metadata={
            "dagster/row_count": len(flags),
            "pairs": len(flags) // 2,
            "flagged_pairs": int(flags["flagged"].sum()) // 2,
            "max_corr_90d": float(np.nanmax(flags["corr_90d"]))
            if flags["corr_90d"].notna().any()
            else float("nan"),
        },
    )
    yield dg.MaterializeResult(
        asset_key="breaker_multipliers",
        value=breaker,
        metadata={
            "dagster/row_count": len(breaker),
            "states": dg.MetadataValue.md(markdown_table(breaker)),
            "number_half": int(sum(s == BreakerState.HALF.label for s in states)),
            "number_halted": int(sum(s == BreakerState.HALTED.label for s in states)),
            "number_benched": int(breaker["benched"].sum()),
        },
    )
    yield dg.MaterializeResult(
        asset_key="rule_events",
        value=events,
        metadata={
            "dagster/row_count": len(events),
            "today": dg.MetadataValue.md(markdown_table(events[events["date"] == day])),
        },
    )


@dg.asset(group_name=GROUP, kinds={"pandas", "sqlite"})
def allocations(
    breaker_multipliers: pd.DataFrame,
    rule_events: pd.DataFrame,
    ledger: LedgerResource,
    settings: AllocatorSettings,
) -> dg.MaterializeResult[pd.DataFrame]:
    """Capital per strategy published at today's close (budget from the next session), in the
    ledger."""
    frame = allocation_frame(breaker_multipliers)
    rows, events = published_rows(breaker_multipliers, rule_events)
    with ledger.open() as store:
        store.write_allocations(rows)
        store.write_events(events)
    total = float(frame["capital"].sum())
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "dagster/row_count": len(frame),
            "session": str(frame["date"].iloc[0]) if len(frame) else "",
            "allocation": dg.MetadataValue.md(markdown_table(frame)),
            "total_capital_deployed": total,
            "cash_held": float(settings.config().allocation.total_capital) - total,
            "number_benched": int(frame["benched"].sum()),
            "number_halted": int((frame["breaker_state"] == BreakerState.HALTED.label).sum()),
        },
    )
