"""The book's trading state as an asset check, and the risk stage's denials as metadata.

docs/spec-12-risk.md (the project's §12). ``trading_state_ok`` (on ``bar_plan``) fails while
the book, or any venue, is not ``active``: reducing (an operator's ``reduce-only`` or the kill
switch) or halted. It is evaluated in every bar run and, as a runless evaluation, by the risk
alert sensor whenever the trading-state journal changes (:func:`trading_state_evaluation`), so
the UI shows a halt when it is set. It does not block: a reducing book must still send its
exits, and the risk stage itself enforces the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd

from allocator.execution.records import GatedIntent
from allocator.execution.risk import BOOK, TradingStatus
from allocator.states import TradingState
from assets._gx import markdown_table
from resources.dagster_resources import LedgerResource

__all__ = [
    "CHECK_NAME",
    "denials_frame",
    "risk_metadata",
    "trading_state_evaluation",
    "trading_state_ok",
    "trading_verdict",
]

CHECK_NAME = "trading_state_ok"
ASSET = "bar_plan"
DENIAL_COLUMNS = [
    "intent_id",
    "strategy",
    "symbol",
    "reason",
    "requested_qty",
    "accepted_qty",
    "limit",
    "value",
    "detail",
]


def trading_verdict(status: TradingStatus) -> tuple[bool, str, dict[str, Any]]:
    """``(passed, description, metadata)`` of the trading states (pure)."""
    venues = {v.value: s.value for v, s in sorted(status.venues.items())}
    metadata: dict[str, Any] = {
        "trading_state": status.book.value,
        "venue_states": venues,
        "trading_state_detail": status.detail(BOOK),
    }
    stopped = {v: s for v, s in venues.items() if s != TradingState.ACTIVE.value}
    if status.book is not TradingState.ACTIVE:
        return (
            False,
            f"the book is {status.book}: {status.detail(BOOK)} (`allocator resume --reason ...`)",
            metadata,
        )
    if stopped:
        listed = ", ".join(f"{v} {s}: {status.detail(v)}" for v, s in stopped.items())
        return False, f"venue(s) not active: {listed} (`allocator resume --venue V`)", metadata
    return True, "the book and every venue are active", metadata


def _metadata(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str) else dg.MetadataValue.json(v) for k, v in values.items()}


def trading_state_evaluation(status: TradingStatus) -> dg.AssetCheckEvaluation:
    """The check's verdict as a runless evaluation (what the risk alert sensor reports)."""
    passed, description, metadata = trading_verdict(status)
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
    blocking=False,
    description="The book and every venue are active (not reducing, not halted).",
)
def trading_state_ok(ledger: LedgerResource) -> dg.AssetCheckResult:
    """Fails while the book or a venue is reducing or halted (see the module doc)."""
    with ledger.open() as store:
        passed, description, metadata = trading_verdict(store.trading_status())
    return dg.AssetCheckResult(
        passed=passed,
        description=description,
        metadata=_metadata(metadata),
        severity=dg.AssetCheckSeverity.ERROR,
    )


def denials_frame(denials: Sequence[GatedIntent]) -> pd.DataFrame:
    """The risk stage's denials as a table (decimals as text)."""
    return pd.DataFrame(
        [
            {
                "intent_id": g.intent_id,
                "strategy": g.strategy,
                "symbol": g.symbol,
                "reason": None if g.reason is None else g.reason.value,
                "requested_qty": str(g.requested_qty),
                "accepted_qty": str(g.accepted_qty),
                "limit": None if g.limit is None else str(g.limit),
                "value": None if g.value is None else str(g.value),
                "detail": g.detail,
            }
            for g in denials
        ],
        columns=DENIAL_COLUMNS,
    )


MAX_SHOWN = 200


def risk_metadata(denials: Sequence[GatedIntent], status: TradingStatus) -> dict[str, Any]:
    """The bar's risk denials and the trading states, as asset metadata."""
    frame = denials_frame(denials)
    counts = frame["reason"].value_counts().to_dict() if len(frame) else {}
    return {
        "trading_state": status.book.value,
        "venue_states": dg.MetadataValue.json(
            {v.value: s.value for v, s in sorted(status.venues.items())}
        ),
        "risk_denials": len(frame),
        "risk_denials_by_reason": dg.MetadataValue.json(
            {str(k): int(v) for k, v in counts.items()}
        ),
        "risk_denial_rows": dg.MetadataValue.md(markdown_table(frame.head(MAX_SHOWN))),
    }
