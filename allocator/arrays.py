"""The numpy array aliases every module of the project annotates with.

Why one module: an alias is a promise about a dtype (``FloatArray`` is float64, ``IntArray``
int64); defined once, a signature means the same thing in the rules engine, the per-bar core
and the demo, and changing a dtype is one edit. Importing this module costs nothing beyond
numpy itself, so the per-bar path may use it too.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["BoolArray", "CodeArray", "DateArray", "FloatArray", "IndexArray", "IntArray"]

FloatArray = npt.NDArray[np.float64]
"""Analytics figures: returns, volatilities, weights, capital (float64; money is not here)."""

IntArray = npt.NDArray[np.int64]
"""Exact integers: lots, counts, quantities in units of a lot or of the cash quantum."""

BoolArray = npt.NDArray[np.bool_]
"""Flags, one per strategy, pair or session."""

CodeArray = npt.NDArray[np.int8]
"""Small enum codes: breaker states, refusal reason codes."""

IndexArray = npt.NDArray[np.intp]
"""Positions into another array (``np.intp``, what numpy's indexing returns)."""

DateArray = npt.NDArray[np.datetime64]
"""Session dates (``datetime64[D]``)."""
