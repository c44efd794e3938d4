"""The bar lane's health as an asset check (docs/decisions/0012-live-bar-path.md).

A failed bar stops the lane: no later bar trades until it is settled or abandoned; the bar
sensor retries it with backoff and halts the lane after ``[execution] max_bar_retries``.
``bar_lane_ok`` (on ``submitted_orders``, like ``venues_reconciled``) fails while the lane is
halted or an open bar has failed, naming the bar, its attempts and its last error. It is
evaluated in every bar run (after the broker step) and, because a failed run never gets that
far, also by the bar sensor itself whenever it records a failure or halts the lane (a runless
evaluation: :func:`lane_evaluation`), so the UI shows the failure when it happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from allocator.execution.ledger import BarState, BarStatus, LaneHalt
from resources.dagster_resources import LedgerResource

__all__ = ["CHECK_NAME", "bar_lane_ok", "lane_evaluation", "lane_verdict"]

CHECK_NAME = "bar_lane_ok"
ASSET = "submitted_orders"


def lane_verdict(
    halt: LaneHalt | None, open_bars: Sequence[BarStatus]
) -> tuple[bool, str, dict[str, Any]]:
    """``(passed, description, metadata)`` of the lane (pure): it fails while ``halt`` is in
    force or one of ``open_bars`` is ``failed``."""
    failed = [s for s in open_bars if s.state is BarState.FAILED]
    metadata: dict[str, Any] = {
        "open_bars": [s.bar for s in open_bars],
        "failed_bars": {
            s.bar: {
                "attempts": s.attempts,
                "last_error": s.last_error or "",
                "next_retry_at": None if s.next_retry_at is None else s.next_retry_at.isoformat(),
            }
            for s in failed
        },
        "lane_halted": halt is not None,
    }
    if halt is not None:
        metadata["halt_reason"] = halt.reason
        metadata["halted_bar"] = halt.bar or ""
        metadata["halted_at"] = halt.halted_at.isoformat()
        return (
            False,
            f"the bar lane is halted since {halt.halted_at.isoformat()}: {halt.reason} "
            "(`allocator bar retry BAR` or `allocator bar abandon BAR --reason ...`)",
            metadata,
        )
    if failed:
        first = failed[0]
        due = "now" if first.next_retry_at is None else first.next_retry_at.isoformat()
        return (
            False,
            f"bar {first.bar} failed {first.attempts} time(s), retry due {due}: "
            f"{first.last_error}; no later bar trades until it is settled or abandoned",
            metadata,
        )
    return True, "the bar lane runs: no bar failed and the lane is not halted", metadata


def _metadata(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | bool) else dg.MetadataValue.json(v) for k, v in values.items()
    }


def lane_evaluation(
    halt: LaneHalt | None, open_bars: Sequence[BarStatus]
) -> dg.AssetCheckEvaluation:
    """The check's verdict as a runless evaluation (what the bar sensor reports)."""
    passed, description, metadata = lane_verdict(halt, open_bars)
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(ASSET),
        check_name=CHECK_NAME,
        passed=passed,
        description=description,
        metadata=_metadata(metadata),
        severity=dg.AssetCheckSeverity.ERROR,
    )


@dg.asset_check(
    asset=ASSET,
    name=CHECK_NAME,
    description="The bar lane runs: no open bar has failed and the lane is not halted.",
)
def bar_lane_ok(ledger: LedgerResource) -> dg.AssetCheckResult:
    """Fails while the bar lane is halted or a sealed bar's run failed (see the module doc)."""
    with ledger.open() as store:
        passed, description, metadata = lane_verdict(store.lane_halt(), store.open_bars())
    return dg.AssetCheckResult(passed=passed, description=description, metadata=_metadata(metadata))
