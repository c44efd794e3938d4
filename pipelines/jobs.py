"""Jobs: the daily rule set and the per-bar execution."""

from __future__ import annotations

import dagster as dg

from assets.tags import BAR_LANE, REBALANCE_LANE

RULES = dg.AssetSelection.groups("rules")
EXECUTION = dg.AssetSelection.groups("execution")
# The dashboard is regenerated after every rebalance and every bar (it runs last: it depends on
# allocations and pnl, after the bar's orders are acknowledged).
REPORTING = dg.AssetSelection.groups("reporting")

rebalance_job = dg.define_asset_job(
    "rebalance_job",
    selection=RULES | REPORTING,
    description="Returns to published allocation at a session's close (SPEC §1-§6).",
    tags=REBALANCE_LANE,
)

bar_job = dg.define_asset_job(
    "bar_job",
    selection=EXECUTION | REPORTING,
    description="One bar: intents, gating, netting, the broker, attribution, P&L (SPEC §7-§9).",
    executor_def=dg.in_process_executor,
    tags=BAR_LANE,
)

bar_job_multiprocess = dg.define_asset_job(
    "bar_job_multiprocess",
    selection=EXECUTION | REPORTING,
    description="bar_job on the default multiprocess executor (the latency benchmark's baseline).",
    tags=BAR_LANE,
)
