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
    "BOOT_TAG",
    "HOST_TAG",
    "LANE_TAG",
    "PARENT_RUN_TAG",
    "PID_NS_TAG",
    "PID_TAG",
    "REBALANCE_LANE",
    "SESSION_TAG",
    "STARTED_AT_TAG",
    "START_TAG",
    "bar_key_of_run",
    "bar_of",
    "lease_label",
]

LANE_TAG = "allocator/lane"
BAR_LANE = {LANE_TAG: "bar"}
REBALANCE_LANE = {LANE_TAG: "rebalance"}
BAR_TAG = "allocator/bar"
SESSION_TAG = "allocator/session"
PID_TAG = "allocator/run_worker_pid"
HOST_TAG = "allocator/run_worker_host"
START_TAG = "allocator/run_worker_start"
# with PID_TAG and HOST_TAG, the worker's full identity (pipelines/run_lease.py): a PID means a
# process only in one kernel boot and PID namespace, and only until it is reused
BOOT_TAG = "allocator/run_worker_boot_id"
PID_NS_TAG = "allocator/run_worker_pid_ns"
STARTED_AT_TAG = "allocator/run_worker_started_at"
PARENT_RUN_TAG = "dagster/parent_run_id"  # set by Dagster on a re-execution


def lease_label(run_id: str) -> str:
    """The label of the bar lease a Dagster run holds (``allocator.execution.lease``): the
    sensor gives up the lease of a run whose failure it records."""
    return f"dagster:{run_id}"


def bar_key_of_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """The bar a run is for: its ``allocator/bar`` tag, else its parent's or its root's.

    A re-execution through the Python API (``execute_job`` with ``ReexecutionOptions``) does
    not copy the parent's tags (the UI's does); it is still a run of its parent's bar.
    """
    key = run.tags.get(BAR_TAG)
    for parent_id in (run.parent_run_id, run.root_run_id):
        if key or not parent_id:
            continue
        parent = instance.get_run_by_id(parent_id)
        key = parent.tags.get(BAR_TAG) if parent is not None else None
    return key or None


def bar_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> Bar:
    """The run's bar (:func:`bar_key_of_run`); a run without the tag gets it here.

    So every bar run carries its bar's tag however it was launched (a re-execution through
    the Python API included) once its first step has started, and the bar sensor counts it
    as an attempt of that bar.
    """
    run = context.run
    key = bar_key_of_run(context.instance, run)
    if not key:
        raise dg.Failure(f"run has no {BAR_TAG} tag: launch bar_job from the bar sensor")
    if run.tags.get(BAR_TAG) != key:
        context.instance.add_run_tags(run.run_id, {BAR_TAG: key})
    return parse_bar(key)
