"""Every Dagster run tag the allocator reads or writes, and :func:`bar_of`.

One home for the names, so that the sensor, the schedule, the jobs, the run launcher and the
assets cannot drift apart. ``allocator/lane`` keeps runs of one kind apart (``bar`` runs never
overlap; the warm run launcher takes only those); ``allocator/bar`` and ``allocator/session``
say which bar or session a run is for; the ``allocator/run_worker_*`` tags record which process
ran a bar and whether it started warm.
"""

from __future__ import annotations

import dagster as dg

from allocator.execution.records import Bar, parse_bar

__all__ = [
    "BAR_LANE",
    "BAR_TAG",
    "HOST_TAG",
    "LANE_TAG",
    "PARENT_RUN_TAG",
    "PID_TAG",
    "REBALANCE_LANE",
    "SESSION_TAG",
    "START_TAG",
    "bar_of",
]

LANE_TAG = "allocator/lane"
BAR_LANE = {LANE_TAG: "bar"}
REBALANCE_LANE = {LANE_TAG: "rebalance"}
BAR_TAG = "allocator/bar"
SESSION_TAG = "allocator/session"
PID_TAG = "allocator/run_worker_pid"
HOST_TAG = "allocator/run_worker_host"
START_TAG = "allocator/run_worker_start"
PARENT_RUN_TAG = "dagster/parent_run_id"  # set by Dagster on a re-execution


def bar_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> Bar:
    """The run's bar: its ``allocator/bar`` tag, else its parent's or root's.

    A re-execution through the Python API does not copy the parent's tags; the UI's does.
    """
    run = context.run
    key = run.tags.get(BAR_TAG)
    for parent_id in (run.parent_run_id, run.root_run_id):
        if key or not parent_id:
            continue
        parent = context.instance.get_run_by_id(parent_id)
        key = parent.tags.get(BAR_TAG) if parent is not None else None
    if not key:
        raise dg.Failure(f"run has no {BAR_TAG} tag: launch bar_job from the bar sensor")
    return parse_bar(key)
