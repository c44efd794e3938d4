"""The correlation drop rule (SPEC §3): re-admission, then benching, at each session's close.

Pure functions over the pair counters of :class:`~allocator.stats.PairCorrelationStream`.
Strategies are indices into the name-sorted strategy list, so index order is name order and the
pair ``(a, b)`` always has ``a < b``. :class:`~allocator.replay.AllocatorEngine` calls
:func:`readmit_step` and then :func:`bench_step` once per session, after the statistics.

Why two functions that mutate one ``benched`` array in place: SPEC §3 orders re-admission before
benching and lets a strategy re-admitted earlier in the walk count as active for the next one,
and the engine compares the bench set before the re-admissions with the set after the benchings
to decide whether an event-driven recompute falls on the session (SPEC §4; README, "Readings of
SPEC made explicit").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from allocator.arrays import BoolArray, FloatArray, IntArray

__all__ = ["BenchEvent", "PairTable", "bench_step", "readmit_step"]


@dataclass(frozen=True, slots=True)
class PairTable:
    """Index arrays of the pairs and the ``(i, j) -> pair`` lookup for ``n`` strategies.

    Pairs are numbered in the order of :func:`allocator.stats.pair_index` (upper triangle,
    row-major), the order of :class:`~allocator.stats.PairCorrelationStream`'s arrays.

    Attributes
    ----------
    a : numpy.ndarray of intp, shape (n_pairs,)
        First member of each pair (strategy index), ``a < b``.
    b : numpy.ndarray of intp, shape (n_pairs,)
        Second member of each pair (strategy index).
    lookup : numpy.ndarray of intp, shape (n, n)
        ``lookup[i, j]`` = ``lookup[j, i]`` = the pair number of ``{i, j}``; -1 on the
        diagonal.
    """

    a: npt.NDArray[np.intp]
    b: npt.NDArray[np.intp]
    lookup: npt.NDArray[np.intp]

    @classmethod
    def build(cls, n: int) -> PairTable:
        """Build the table of the ``n (n - 1) / 2`` pairs of ``n`` strategies."""
        a, b = np.triu_indices(n, k=1)
        lookup = np.full((n, n), -1, dtype=np.intp)
        idx = np.arange(a.size, dtype=np.intp)
        lookup[a, b] = idx
        lookup[b, a] = idx
        return cls(a=a.astype(np.intp), b=b.astype(np.intp), lookup=lookup)


@dataclass(frozen=True, slots=True)
class BenchEvent:
    """A bench or re-admission of one strategy, decided at the close of a session.

    Attributes
    ----------
    kind : str
        ``"bench"`` or ``"readmit"``.
    index : int
        The strategy, as an index into the name-sorted strategy list (>= 0).
    detail : str
        Why, for a person (the correlation, the threshold, the Sharpes compared); it becomes
        the ``detail`` field of ``events.csv``.
    """

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
    back when ``calm_run(s, x) >= persistence`` for every active, mature ``x`` other than ``s``
    (strategies re-admitted earlier in this call count as active); with no such ``x`` it comes
    back.

    Parameters
    ----------
    benched : numpy.ndarray of bool, shape (n,)
        The bench set at the start of the session; re-admitted strategies are set to False.
    mature : numpy.ndarray of bool, shape (n,)
        True where the strategy has existed for at least the correlation window (its first
        session counts as the first).
    calm_run : numpy.ndarray of int64, shape (n_pairs,)
        The pairs' ``calm_run`` counters after this session, in :class:`PairTable` order.
    pairs : PairTable
        The pair numbering for ``n`` strategies.
    persistence : int
        Sessions a pair must stay calm (``corr_90d <= threshold``), >= 1.
    names : tuple of str
        Strategy names in index order, for the events' details.

    Returns
    -------
    list of BenchEvent
        One ``"readmit"`` event per re-admitted strategy, in name order.
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
    """Return the member of pair (a, b), a < b, to bench: lower Sharpe, NaN lowest, tie -> b."""
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
    """Bench the lower-Sharpe member of each flagged pair of active strategies.

    Mutates ``benched`` and returns the events. Pairs are walked by ``corr`` descending, then
    ``(a, b)``; a pair is skipped once one of its members has been benched earlier in the walk.
    The member benched has the lower ``sharpe``, a NaN Sharpe counting as lowest; on a tie (two
    NaNs included) the one whose name sorts later is benched.

    Parameters
    ----------
    benched : numpy.ndarray of bool, shape (n,)
        The bench set after this session's re-admissions; benched strategies are set to True.
    flagged : numpy.ndarray of bool, shape (n_pairs,)
        ``breach_run >= persistence`` per pair, in :class:`PairTable` order.
    corr : numpy.ndarray of float64, shape (n_pairs,)
        This session's ``corr_90d`` per pair, in [-1, 1] or NaN.
    sharpe : numpy.ndarray of float64, shape (n,)
        This session's annualised ``sharpe_90d`` per strategy, NaN where undefined.
    pairs : PairTable
        The pair numbering for ``n`` strategies.
    threshold, persistence : float, int
        The rule's parameters, used only in the events' details.
    names : tuple of str
        Strategy names in index order, for the events' details.

    Returns
    -------
    list of BenchEvent
        One ``"bench"`` event per benched strategy, in walk order.
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
