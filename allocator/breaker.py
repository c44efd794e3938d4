"""The drawdown circuit breaker (SPEC §5) as an explicit state machine.

:func:`transition` is pure: it takes the state at the start of the session, that session's
month-to-date return and 90-day Sharpe, and returns a :class:`BreakerDecision` with the new
state and whether it changed. ``half`` is not latched; ``halted`` is, until
``sharpe > recovery_sharpe`` (strict), and on release the MTD rule decides the new state in the
same session. A NaN MTD leaves any state unchanged. The states themselves
(:class:`~allocator.states.BreakerState`) live with the published strategy states in
:mod:`allocator.states`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from allocator._jit import njit
from allocator.arrays import CodeArray, FloatArray
from allocator.config import BreakerConfig
from allocator.states import BreakerState

__all__ = [
    "BreakerDecision",
    "multiplier",
    "multiplier_kernel",
    "multipliers",
    "transition",
    "transition_all",
    "transition_kernel",
]


def multiplier(state: BreakerState, config: BreakerConfig) -> float:
    """Size multiplier of a state: 1, ``half_multiplier`` (0.5) or 0."""
    if state is BreakerState.NORMAL:
        return 1.0
    if state is BreakerState.HALF:
        return config.half_multiplier
    return 0.0


@dataclass(frozen=True, slots=True)
class BreakerDecision:
    """Outcome of one session: ``old`` -> ``new``; ``event`` is ``"old->new"`` or ``None``.

    Attributes
    ----------
    old : BreakerState
        The state at the start of the session.
    new : BreakerState
        The state after the session's close.
    """

    old: BreakerState
    new: BreakerState

    @property
    def changed(self) -> bool:
        """Whether the session moved the breaker."""
        return self.old is not self.new

    @property
    def event(self) -> str | None:
        """The event as stored (``"normal->half"``), or ``None`` when nothing changed."""
        return f"{self.old.label}->{self.new.label}" if self.changed else None


def _mtd_rule(mtd: float, config: BreakerConfig) -> BreakerState:
    if mtd <= config.halt_at:
        return BreakerState.HALTED
    if mtd <= config.half_at:
        return BreakerState.HALF
    return BreakerState.NORMAL


def transition(
    state: BreakerState, mtd_return: float, sharpe_90d: float, config: BreakerConfig
) -> BreakerDecision:
    """Take the breaker's step at the close of one session (SPEC §5)."""
    if math.isnan(mtd_return):
        return BreakerDecision(state, state)
    if state is BreakerState.HALTED and not (sharpe_90d > config.recovery_sharpe):
        return BreakerDecision(state, state)  # latched (a NaN Sharpe does not release)
    return BreakerDecision(state, _mtd_rule(mtd_return, config))


@njit
def transition_kernel(
    states: CodeArray,
    mtd_return: FloatArray,
    sharpe_90d: FloatArray,
    half_at: float,
    halt_at: float,
    recovery_sharpe: float,
    out: CodeArray,
) -> None:
    """:func:`transition` for every strategy, compiled (the engine's session kernel calls it).

    Writes the new state codes into ``out`` (0 normal, 1 half, 2 halted).
    """
    for j in range(states.shape[0]):
        m = mtd_return[j]
        old = states[j]
        if math.isnan(m) or (old == 2 and not (sharpe_90d[j] > recovery_sharpe)):
            out[j] = old  # no MTD: unchanged; halted is latched (a NaN Sharpe does not release)
        elif m <= halt_at:
            out[j] = 2
        elif m <= half_at:
            out[j] = 1
        else:
            out[j] = 0


@njit
def multiplier_kernel(states: CodeArray, half_multiplier: float, out: FloatArray) -> None:
    """:func:`multiplier` for every state code, into ``out``: 1, ``half_multiplier`` or 0."""
    for j in range(states.shape[0]):
        code = states[j]
        out[j] = 1.0 if code == 0 else (half_multiplier if code == 1 else 0.0)


def transition_all(
    states: CodeArray,
    mtd_return: FloatArray,
    sharpe_90d: FloatArray,
    config: BreakerConfig,
) -> CodeArray:
    """:func:`transition` for every strategy at once (state codes in, state codes out)."""
    codes = np.ascontiguousarray(states, dtype=np.int8)
    out = np.empty_like(codes)
    transition_kernel(
        codes,
        np.ascontiguousarray(mtd_return, dtype=np.float64),
        np.ascontiguousarray(sharpe_90d, dtype=np.float64),
        config.half_at,
        config.halt_at,
        config.recovery_sharpe,
        out,
    )
    return out


def multipliers(states: CodeArray, config: BreakerConfig) -> FloatArray:
    """:func:`multiplier` for every state code."""
    codes = np.ascontiguousarray(states, dtype=np.int8)
    out = np.empty(codes.shape[0])
    multiplier_kernel(codes, config.half_multiplier, out)
    return out
