"""The correlation drop rule (SPEC §3): re-admission, then benching, at each session's close.

Pure functions over the pair counters of :class:`~allocator.stats.PairCorrelationStream`.
Strategies are indices into the name-sorted strategy list, so index order is name order and the
pair ``(a, b)`` always has ``a < b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["BenchEvent", "PairTable", "bench_step", "readmit_step"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PairTable:
    """Index arrays of the pairs and the ``(i, j) -> pair`` lookup for ``n`` strategies."""

    a: npt.NDArray[np.intp]
    b: npt.NDArray[np.intp]
    lookup: npt.NDArray[np.intp]

    @classmethod
    def build(cls, n: int) -> PairTable:
        a, b = np.triu_indices(n, k=1)
        lookup = np.full((n, n), -1, dtype=np.intp)
        idx = np.arange(a.size, dtype=np.intp)
        lookup[a, b] = idx
        lookup[b, a] = idx
        return cls(a=a.astype(np.intp), b=b.astype(np.intp), lookup=lookup)


@dataclass(frozen=True, slots=True)
class BenchEvent:
    """A bench or re-admission of strategy ``index``; ``detail`` says why, for a person."""

    kind: str  # "bench" or "readmit"
    index: int
    detail: str


def readmit_step(
    benched: BoolArray,
    mature: BoolArray,
    calm_run: IntArray,
    pairs: PairTable,
    persistence: int,
    names: tuple[str, ...],
) -> list[BenchEvent]:
    """Re-admit benched strategies in name order; mutates ``benched`` and returns the events.

    ``mature[x]``: ``x`` has existed for at least the correlation window. A benched ``s`` comes
    back when ``calm_run(s, x) >= persistence`` for every active, mature ``x`` (strategies
    re-admitted earlier in this call count as active); with no such ``x`` it comes back.
    """
    events: list[BenchEvent] = []
    if not benched.any():
        return events
    for found in np.flatnonzero(benched):
        s = int(found)
        judges = np.flatnonzero(~benched & mature)
        judges = judges[judges != s]
        if judges.size == 0:
            benched[s] = False
            events.append(BenchEvent("readmit", s, "no active strategy old enough to compare"))
            continue
        runs = calm_run[pairs.lookup[s, judges]]
        if np.all(runs >= persistence):
            benched[s] = False
            shown = ", ".join(names[int(x)] for x in judges)
            events.append(
                BenchEvent(
                    "readmit",
                    s,
                    f"corr_90d <= threshold for >= {persistence} sessions against {shown}",
                )
            )
    return events


def _loser(a: int, b: int, sharpe: FloatArray) -> int:
    """The member of pair (a, b), a < b, to bench: lower Sharpe, NaN lowest, tie -> b."""
    sa, sb = float(sharpe[a]), float(sharpe[b])
    if math.isnan(sa) and not math.isnan(sb):
        return a
    if math.isnan(sb) or math.isnan(sa):
        return b
    if sa < sb:
        return a
    return b


def bench_step(
    benched: BoolArray,
    flagged: BoolArray,
    corr: FloatArray,
    sharpe: FloatArray,
    pairs: PairTable,
    threshold: float,
    persistence: int,
    names: tuple[str, ...],
) -> list[BenchEvent]:
    """Bench the lower-Sharpe member of each flagged pair of active strategies; mutates
    ``benched`` and returns the events.

    Pairs are walked by ``corr`` descending, then ``(a, b)``; a pair is skipped once one of its
    members has been benched earlier in the walk.
    """
    active = ~benched
    candidates = np.flatnonzero(flagged & active[pairs.a] & active[pairs.b])
    if candidates.size == 0:
        return []
    order = np.lexsort((pairs.b[candidates], pairs.a[candidates], -corr[candidates]))
    events: list[BenchEvent] = []
    for p in candidates[order]:
        a, b = int(pairs.a[p]), int(pairs.b[p])
        if benched[a] or benched[b]:
            continue
        loser = _loser(a, b, sharpe)
        keeper = b if loser == a else a
        benched[loser] = True
        events.append(
            BenchEvent(
                "bench",
                loser,
                f"corr_90d({names[a]},{names[b]})={corr[p]:.6f} > {threshold} for >= "
                f"{persistence} sessions; sharpe_90d {sharpe[loser]:.6f} vs "
                f"{names[keeper]} {sharpe[keeper]:.6f}",
            )
        )
    return events
