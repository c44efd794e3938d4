"""Walk-forward: the best configuration of each training window, applied to the next test window.

The book returns of every cell come from one replay of the whole history (a decision at ``t``
reads returns through ``t`` only, so the returns of a window are what that configuration,
running since the start, earned there). For each window ``k`` the rows
``[k·test, k·test + train)`` of the book returns are the training window and the next
``test`` rows the test window (the last test window may be shorter: every session after the
first training window is out of sample once). The configuration with the best ``objective``
on the training window (ties: the first in grid order) supplies the test window's returns; the
stitched test windows are the tuned out-of-sample book, set against the base configuration's
book over the same sessions. Switching configuration at a window's start means taking that
configuration's book as if it had run from the start (its bench set and breaker states
included): the sweep's reading, documented in ``docs/decisions/0014-research-sweeps.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from allocator.arrays import FloatArray
from allocator.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from allocator.research.grid import Grid
    from allocator.research.sweep import SweepResult

__all__ = ["OBJECTIVES", "WalkForward", "parse_walk_forward", "walk_forward"]

# Objective -> (metric of summary.json, +1 to maximise / -1 to minimise).
OBJECTIVES = {
    "sharpe": 1.0,
    "cagr": 1.0,
    "max_drawdown": 1.0,  # <= 0: the highest is the shallowest drawdown
    "vol": -1.0,
}


def parse_walk_forward(text: str) -> tuple[int, int]:
    """Read ``train=756,test=252`` into ``(train, test)`` sessions; refuse anything else."""
    parts: dict[str, int] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in ("train", "test") or name in parts:
            raise ConfigError("--walk-forward", f"expected train=N,test=M, got {text!r}")
        try:
            parts[name] = int(value)
        except ValueError:
            raise ConfigError(
                "--walk-forward", f"{name} must be a whole number, got {value!r}"
            ) from None
        if parts[name] < 2:
            raise ConfigError("--walk-forward", f"{name} must be >= 2 sessions, got {value!r}")
    if set(parts) != {"train", "test"}:
        raise ConfigError("--walk-forward", f"expected train=N,test=M, got {text!r}")
    return parts["train"], parts["test"]


def _metric(returns: FloatArray, metric: str, annualization: int) -> float:
    from allocator.figures import performance

    if len(returns) < 2 or float(np.std(returns)) == 0.0:
        return {"vol": 0.0, "max_drawdown": 0.0}.get(metric, math.nan)
    perf = performance(np.concatenate([[1.0], np.cumprod(1.0 + returns)]), annualization)
    return {
        "sharpe": perf.sharpe,
        "cagr": perf.annual_return,
        "max_drawdown": perf.max_drawdown,
        "vol": perf.volatility,
    }[metric]


@dataclass(frozen=True, slots=True)
class WalkForward:
    """The walk-forward's result.

    Attributes
    ----------
    windows : pandas.DataFrame
        One row per window: ``window``, ``train_start``, ``train_end``, ``test_start``,
        ``test_end`` (dates), the chosen value of each grid key, ``train_<objective>``,
        ``test_<objective>_tuned`` and ``test_<objective>_default``.
    tuned, default : numpy.ndarray of float64
        The stitched out-of-sample book returns of the tuned and the base configuration.
    summary : pandas.DataFrame
        ``book, sessions, cagr, vol, sharpe, max_drawdown`` for ``tuned`` and ``default``.
    beats : bool
        Whether the tuned book's objective beats the default's out of sample.
    verdict : str
        The sentence that says so.
    """

    windows: pd.DataFrame
    tuned: FloatArray
    default: FloatArray
    summary: pd.DataFrame
    beats: bool
    verdict: str


def walk_forward(
    sweep: SweepResult,
    grid: Grid,
    default_book: FloatArray,
    dates: npt.NDArray[np.datetime64],
    *,
    train: int,
    test: int,
    objective: str = "sharpe",
    annualization: int = 252,
) -> WalkForward:
    """Pick the best cell per training window and stitch its test windows (see the module).

    Parameters
    ----------
    sweep : SweepResult
        Every cell's book returns.
    grid : Grid
        The grid (for the chosen values).
    default_book : numpy.ndarray of float64
        The base configuration's book returns, same sessions as the cells'.
    dates : numpy.ndarray of datetime64[D]
        The sessions of the book returns.
    train, test : int
        Window lengths in sessions.
    objective : str, default "sharpe"
        One of :data:`OBJECTIVES`.
    annualization : int, default 252
        Sessions per year.

    Returns
    -------
    WalkForward

    Raises
    ------
    ConfigError
        Unknown objective, or a history too short for one training and one test session.
    """
    import pandas as pd

    if objective not in OBJECTIVES:
        raise ConfigError("--objective", f"must be one of {sorted(OBJECTIVES)}, got {objective!r}")
    sign = OBJECTIVES[objective]
    n = len(default_book)
    if n < train + 1:
        raise ConfigError(
            "--walk-forward",
            f"train={train} leaves no test session: the book has {n} sessions",
        )
    books = np.stack([sweep.books[cid] for cid in sweep.ids])
    rows: list[dict[str, Any]] = []
    tuned_parts, default_parts = [], []
    start, k = 0, 0
    while start + train < n:
        lo, mid, hi = start, start + train, min(start + train + test, n)
        scores = np.array([_metric(b[lo:mid], objective, annualization) for b in books])
        ranked = np.where(np.isnan(scores), -np.inf, sign * scores)
        best = int(np.argmax(ranked))
        tuned = books[best, mid:hi]
        tuned_parts.append(tuned)
        default_parts.append(default_book[mid:hi])
        row: dict[str, Any] = {
            "window": k,
            "train_start": str(dates[lo]),
            "train_end": str(dates[mid - 1]),
            "test_start": str(dates[mid]),
            "test_end": str(dates[hi - 1]),
        }
        row.update(dict(grid.cells[best]))
        row[f"train_{objective}"] = float(scores[best])
        row[f"test_{objective}_tuned"] = _metric(tuned, objective, annualization)
        row[f"test_{objective}_default"] = _metric(default_book[mid:hi], objective, annualization)
        rows.append(row)
        start += test
        k += 1
    tuned_all = np.concatenate(tuned_parts)
    default_all = np.concatenate(default_parts)
    summary = pd.DataFrame(
        [
            {
                "book": name,
                "sessions": len(r),
                **{m: _metric(r, m, annualization) for m in ("cagr", "vol", "sharpe")},
                "max_drawdown": _metric(r, "max_drawdown", annualization),
            }
            for name, r in (("tuned", tuned_all), ("default", default_all))
        ]
    )
    t_score = _metric(tuned_all, objective, annualization)
    d_score = _metric(default_all, objective, annualization)
    beats = bool(sign * t_score > sign * d_score)
    verdict = (
        f"Out of sample ({len(tuned_all)} sessions, {k} windows): tuned {objective} "
        f"{t_score:.3f} vs default {d_score:.3f}: "
        + (
            "the tuned book beats the default."
            if beats
            else "the tuned book does NOT beat the default configuration."
        )
    )
    return WalkForward(
        windows=pd.DataFrame(rows),
        tuned=tuned_all,
        default=default_all,
        summary=summary,
        beats=beats,
        verdict=verdict,
    )
