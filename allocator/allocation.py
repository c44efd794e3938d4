"""From weights to capital (SPEC §6).

``final_weight = base_weight × multiplier`` (0 for a benched strategy) and
``capital = final_weight × total_capital``. With ``redistribute_freed_capital`` the final
weights are rescaled to sum to the non-benched base weights' total, so capital freed by a
breaker goes to the strategies still trading, pro rata to their final weights; by default it
stays in cash. Called by :class:`~allocator.replay.AllocatorEngine` as the last step of a
session.

Why this is a separate last step and not part of sizing: SPEC §5 says the breaker never
triggers a recompute. The base weights are held between recomputes, and a breaker change only
moves the multiplier applied here, so it changes capital without moving the recompute schedule
of :class:`~allocator.sizing.SizingSchedule`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from allocator._jit import njit
from allocator.arrays import FloatArray
from allocator.config import AllocationConfig

__all__ = ["final_kernel", "final_weights"]


def final_weights(
    base: FloatArray,
    multipliers: FloatArray,
    benched: npt.NDArray[np.bool_],
    config: AllocationConfig,
) -> tuple[FloatArray, FloatArray]:
    """Compute ``(final_weight, capital)`` per strategy for one session.

    Parameters
    ----------
    base : numpy.ndarray of float64, shape (n,)
        Base weights after any recompute at this session: fractions of ``total_capital``,
        >= 0, summing to 1 over the strategies eligible at the last recompute (all 0 before
        the first).
    multipliers : numpy.ndarray of float64, shape (n,)
        Breaker multipliers after the breaker at this session, each in [0, 1].
    benched : numpy.ndarray of bool, shape (n,)
        True for a strategy benched by the correlation rule; its final weight is 0.
    config : AllocationConfig
        ``total_capital`` and ``redistribute_freed_capital``.

    Returns
    -------
    final_weight : numpy.ndarray of float64, shape (n,)
        Fractions of ``total_capital``, >= 0: ``base × multiplier`` (rescaled when
        ``redistribute_freed_capital`` is set and any final weight is positive).
    capital : numpy.ndarray of float64, shape (n,)
        Account currency (the unit of ``total_capital``), >= 0;
        ``final_weight × total_capital``, not rounded.
    """
    final = np.empty(base.shape[0])
    capital = np.empty(base.shape[0])
    final_kernel(
        np.ascontiguousarray(base, dtype=np.float64),
        np.ascontiguousarray(multipliers, dtype=np.float64),
        np.ascontiguousarray(benched, dtype=np.bool_),
        config.redistribute_freed_capital,
        # total_capital is an exact Decimal in the configuration; the analytics are float64.
        float(config.total_capital),
        final,
        capital,
    )
    return final, capital


@njit
def final_kernel(
    base: FloatArray,
    multipliers: FloatArray,
    benched: npt.NDArray[np.bool_],
    redistribute: bool,
    total_capital: float,
    final: FloatArray,
    capital: FloatArray,
) -> None:
    """:func:`final_weights` compiled, into ``final`` and ``capital`` (the engine calls it)."""
    n = base.shape[0]
    total_final = 0.0
    total_base = 0.0
    for j in range(n):
        final[j] = 0.0 if benched[j] else base[j] * multipliers[j]
        total_final += final[j]
        if not benched[j]:
            total_base += base[j]
    if redistribute and total_final > 0.0:
        scale = total_base / total_final
        for j in range(n):
            final[j] = final[j] * scale
    for j in range(n):
        capital[j] = final[j] * total_capital
