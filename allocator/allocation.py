"""From weights to capital (SPEC §6).

``final_weight = base_weight × multiplier`` (0 for a benched strategy) and
``capital = final_weight × total_capital``. With ``redistribute_freed_capital`` the final
weights are rescaled to sum to the base weights' total, so capital freed by a breaker goes pro
rata to the strategies still trading; by default it stays in cash.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from allocator.config import AllocationConfig

__all__ = ["final_weights"]

FloatArray = npt.NDArray[np.float64]


def final_weights(
    base: FloatArray,
    multipliers: FloatArray,
    benched: npt.NDArray[np.bool_],
    config: AllocationConfig,
) -> tuple[FloatArray, FloatArray]:
    """``(final_weight, capital)`` per strategy for one session."""
    final = np.where(benched, 0.0, base * multipliers)
    if config.redistribute_freed_capital:
        total_final = float(final.sum())
        if total_final > 0.0:
            final = final * (float(base[~benched].sum()) / total_final)
    return final, final * config.total_capital
