"""The daily rule set (SPEC §1-§6): returns, vols, weights, correlation flags, breaker, allocation.

One replay of the stored history (``allocator.replay``: the same engine as the CLI) decides the
four rule outputs; the last session is "today". ``allocations`` publishes today's capital per
strategy to the ledger, which the per-bar job reads as budgets.
"""

from decimal import Decimal
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from allocator.data import build_panel, load_returns, validate_returns
from allocator.execution.inbox import ReturnRow
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
    frame = pd.DataFrame(
        {
            "date": [r.date for r in stored],
            "strategy": [r.strategy for r in stored],
            "return": [np.nan if r.value is None else r.value for r in stored],
        }
    )
    through = context.run.tags.get(SESSION_TAG)
    if through:
        frame = frame[frame["date"] <= through].reset_index(drop=True)
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
    from allocator.replay import replay  # numba kernels: loaded by the rebalance only, not per bar

    config = settings.config()
    frame = validate_returns(returns, "ledger:daily_returns")
    panel = build_panel(frame, config.calendar.name)
    last_day = panel.sessions[-1]
    captured: dict[str, Any] = {}

    def on_pairs(date: np.datetime64, stream: Any, persistence: int) -> None:
        if date == last_day:
            captured.update(
                corr=stream.corr.copy(),
                breach=stream.breach_run.copy(),
                calm=stream.calm_run.copy(),
                persistence=persistence,
            )

    result = replay(panel, config, on_pairs=on_pairs)
    t = len(result.sessions) - 1
    day = str(result.sessions[t])[:10]
    names = list(result.strategies)
    vol_w = config.sizing.vol_window
    window = panel.values[max(0, t - vol_w + 1) : t + 1]
    full_window = (window.shape[0] == vol_w) & ~np.isnan(window).any(axis=0)
    # SPEC §2: an all-equal window has vol 0 (not eligible); the vols check must allow it.
    all_equal = full_window & np.all(window == window[-1:], axis=0)

    vols = pd.DataFrame(
        {
            "date": day,
            "strategy": names,
            "vol_60d": result.vol[t],
            "sharpe_90d": result.sharpe[t],
            "mtd_return": result.mtd[t],
            "full_window": full_window,
            "all_equal": all_equal,
        }
    )
    recomputes = [e for e in result.events if e.kind == "rebalance"]
    last_recompute = str(recomputes[-1].date)[:10] if recomputes else ""
    last_kind = recomputes[-1].detail if recomputes else ""
    vol_now = result.vol[t]
    eligible = ~result.benched[t] & np.isfinite(vol_now) & (vol_now > 0)
    weights = pd.DataFrame(
        {
            "date": day,
            "strategy": names,
            "benched": result.benched[t],
            "eligible": eligible,
            "vol_60d": vol_now,
            "base_weight": result.base_weight[t],
            "recomputed_today": last_recompute == day,
        }
    )
    n = len(names)
    a_idx, b_idx = np.triu_indices(n, k=1)
    rows = []
    if captured:
        for p, (i, j) in enumerate(zip(a_idx.tolist(), b_idx.tolist(), strict=True)):
            item = (
                float(captured["corr"][p]),
                int(captured["breach"][p]),
                int(captured["calm"][p]),
                bool(captured["breach"][p] >= captured["persistence"]),
            )
            rows.append((names[i], names[j], *item))
            rows.append((names[j], names[i], *item))  # both orders: the matrix is checkable
    flags = pd.DataFrame(
        rows, columns=["strategy_a", "strategy_b", "corr_90d", "breach_run", "calm_run", "flagged"]
    )
    flags.insert(0, "date", day)
    states = [BreakerState(int(s)).label for s in result.breaker_state[t]]
    breaker = pd.DataFrame(
        {
            "date": day,
            "strategy": names,
            "mtd_return": result.mtd[t],
            "breaker_state": states,
            "multiplier": result.multiplier[t],
            "benched": result.benched[t],
            "base_weight": result.base_weight[t],
            "final_weight": result.final_weight[t],
            "capital": result.capital[t],
        }
    )
    events = pd.DataFrame(
        {
            "date": [str(e.date)[:10] for e in result.events],
            "kind": [e.kind for e in result.events],
            "strategy": [e.strategy or "" for e in result.events],
            "detail": [e.detail for e in result.events],
        },
        columns=["date", "kind", "strategy", "detail"],
    )
    sessions_since = (
        int(np.sum(result.sessions > np.datetime64(last_recompute))) if recomputes else 0
    )
    context.log.info(f"replayed {len(result.sessions)} sessions x {n} strategies through {day}")
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
            "last_recompute": last_recompute,
            "last_recompute_kind": last_kind,
            "sessions_since_recompute": sessions_since,
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
            "number_benched": int(result.benched[t].sum()),
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
    from resources.ledger import AllocationRow, EventRow

    frame = breaker_multipliers[
        ["date", "strategy", "capital", "final_weight", "breaker_state", "benched"]
    ].copy()
    rows = [
        AllocationRow(
            date=r.date,
            strategy=r.strategy,
            capital=Decimal(repr(float(r.capital))),
            final_weight=float(r.final_weight),
            breaker_state=str(r.breaker_state),
            benched=bool(r.benched),
        )
        for r in frame.itertuples(index=False)
    ]
    events = [
        EventRow(date=e.date, kind=e.kind, strategy=e.strategy or None, detail=e.detail)
        for e in rule_events.itertuples(index=False)
    ]
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
