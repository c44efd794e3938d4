"""The cross-run block: no bar trades on an allocation whose data-quality checks did not pass.

Dagster's blocking checks stop downstream steps in the same run only. The per-bar job runs
later, in other runs, on the allocation the ledger holds; so before planning and again before
sending, it reads the latest evaluation of every check of the rule set (returns to allocations)
from the instance and refuses to trade unless each one passed. A check that never ran, is
still planned (its run crashed or is in progress) or failed, blocks the bar.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

__all__ = ["allocation_verdict", "require_checked_allocation"]


def allocation_verdict(instance: dg.DagsterInstance) -> list[tuple[str, str, str]]:
    """The rule-set checks that block trading: ``(check, status, run_id)``; empty when clear."""
    from assets.checks import rule_check_keys

    keys = rule_check_keys()
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    blocking: list[tuple[str, str, str]] = []
    for key in keys:
        record: Any = latest.get(key)
        if record is None:
            blocking.append((key.to_user_string(), "never evaluated", ""))
            continue
        status = str(record.status.value)
        passed = bool(getattr(record.evaluation, "passed", False))
        if status != "SUCCEEDED" or not passed:
            blocking.append((key.to_user_string(), status.lower(), record.run_id))
    return blocking


def require_checked_allocation(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
) -> None:
    """Raise ``dg.Failure`` (the step fails, nothing is sent) unless every rule check passed."""
    blocking = allocation_verdict(context.instance)
    if blocking:
        table = "\n".join(
            ["| check | latest status | run |", "|---|---|---|"]
            + [f"| {k} | {s} | {r} |" for k, s, r in blocking]
        )
        raise dg.Failure(
            description=(
                f"refusing to trade: {len(blocking)} data-quality check(s) of the allocation "
                "did not pass (latest evaluations, any run)"
            ),
            metadata={"blocking_checks": dg.MetadataValue.md(table)},
            allow_retries=False,
        )
