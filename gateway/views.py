"""What ``GET /v1/me`` computes from the ledger's rows: the breaker's multiplier, the gross
exposure used and free, and the next scheduled rebalance."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from decimal import Decimal

import numpy as np

from allocator.calendar import SessionCalendar
from allocator.errors import ConfigError
from allocator.states import StrategyState

__all__ = ["exposure", "multiplier_of", "next_rebalance"]


def multiplier_of(breaker_state: str, half_multiplier: float) -> Decimal:
    """The breaker's size multiplier of a published state (SPEC §5): 1, ``half_multiplier``
    or 0."""
    state = StrategyState(breaker_state)
    if state is StrategyState.HALF:
        return Decimal(repr(float(half_multiplier)))
    return Decimal(0) if state is StrategyState.HALTED else Decimal(1)


def exposure(
    held: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    capital: Decimal,
    max_leverage: Decimal,
) -> tuple[Decimal, Decimal, list[str]]:
    """(gross used, gross free, unpriced symbols): Σ |qty| × price over the priced positions,
    and ``capital × max_leverage`` less it (never below 0), gating's budget (SPEC §7)."""
    used = sum((abs(q) * prices[m] for m, q in held.items() if m in prices), Decimal(0))
    free = max(Decimal(0), capital * max_leverage - used)
    return used, free, sorted(m for m in held if m not in prices)


@functools.lru_cache(maxsize=64)
def next_rebalance(last: str, every: int, calendar: str) -> str | None:
    """The session ``every`` sessions after ``last`` (the latest recompute of the base
    weights, SPEC §4) on exchange calendar ``calendar``; ``None`` when the calendar does not
    reach it. A bench change recomputes earlier."""
    start = dt.date.fromisoformat(last)
    try:
        cal = SessionCalendar.load(calendar, start, start + dt.timedelta(days=2 * every + 30))
    except ConfigError:
        return None
    sessions = cal.sessions
    at = int(np.searchsorted(sessions, np.datetime64(last, "D"), side="left"))
    target = at + every
    return str(sessions[target])[:10] if target < len(sessions) else None
