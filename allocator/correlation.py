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

The rules themselves are the compiled :func:`readmit_kernel` and :func:`bench_kernel`, which
the engine's session kernel calls (a whole replay runs in compiled code); :func:`readmit_step`
and :func:`bench_step` are their Python faces, with the events' details as text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from allocator._jit import njit
from allocator.arrays import BoolArray, FloatArray, IntArray

__all__ = [
    "BENCH",
    "EVENT_FIELDS",
    "READMIT",
    "BenchEvent",
    "PairTable",
    "bench_detail",
    "bench_kernel",
    "bench_step",
    "readmit_detail",
    "readmit_kernel",
    "readmit_step",
]

# The compiled kernels write their events as rows of an int64 buffer ``ev`` of EVENT_FIELDS
# columns: (session index t, kind, strategy j, a, b, x, m). Bench: the pair (a, b) and its pair
# number x. Readmit: the judges are ``judges[x : x + m]``. ``cnt`` = [events, judges] used.
READMIT = 0
BENCH = 1
EVENT_FIELDS = 7


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


def readmit_detail(judges: list[str], persistence: int) -> str:
    """Return the ``detail`` of a re-admission against ``judges`` (names; none: too young)."""
    if not judges:
        return "no active strategy old enough to compare"
    return f"corr_90d <= threshold for >= {persistence} sessions against {', '.join(judges)}"


def bench_detail(
    names: tuple[str, ...],
    a: int,
    b: int,
    loser: int,
    corr: float,
    sharpe: FloatArray,
    threshold: float,
    persistence: int,
) -> str:
    """Return the ``detail`` of benching ``loser`` of pair ``(a, b)`` at correlation ``corr``."""
    keeper = b if loser == a else a
    return (
        f"corr_90d({names[a]},{names[b]})={corr:.6f} > {threshold} for >= "
        f"{persistence} sessions; sharpe_90d {sharpe[loser]:.6f} vs "
        f"{names[keeper]} {sharpe[keeper]:.6f}"
    )


@njit
def readmit_kernel(
    t: int,
    benched: BoolArray,
    mature: BoolArray,
    calm_run: IntArray,
    lookup: IntArray,
    persistence: int,
    ev: IntArray,
    judges: IntArray,
    cnt: IntArray,
) -> None:
    """Re-admit benched strategies in name order (SPEC §3); mutates ``benched``, logs events.

    A benched ``s`` comes back when ``calm_run(s, x) >= persistence`` for every active, mature
    ``x`` other than ``s`` (strategies re-admitted earlier in this walk count as active); with
    no such ``x`` it comes back. Each re-admission appends a ``READMIT`` row to ``ev`` with its
    judges in ``judges`` (layout: ``EVENT_FIELDS``).
    """
    n = benched.shape[0]
    initial = np.flatnonzero(benched)
    for k in range(initial.shape[0]):
        s = initial[k]
        start = cnt[1]
        m = 0
        calm = True
        for x in range(n):
            if x != s and not benched[x] and mature[x]:
                judges[start + m] = x
                m += 1
                if calm_run[lookup[s, x]] < persistence:
                    calm = False
        if calm:
            benched[s] = False
            e = cnt[0]
            ev[e, 0] = t
            ev[e, 1] = READMIT
            ev[e, 2] = s
            ev[e, 3] = -1
            ev[e, 4] = -1
            ev[e, 5] = start
            ev[e, 6] = m
            cnt[0] = e + 1
            cnt[1] = start + m


@njit
def _loser(a: int, b: int, sharpe: FloatArray) -> int:
    """Return the member of pair (a, b), a < b, to bench: lower Sharpe, NaN lowest, tie -> b."""
    sa, sb = sharpe[a], sharpe[b]
    if math.isnan(sa) and not math.isnan(sb):
        return a
    if math.isnan(sb) or math.isnan(sa):
        return b
    if sa < sb:
        return a
    return b


@njit
def bench_kernel(
    t: int,
    benched: BoolArray,
    breach_run: IntArray,
    persistence: int,
    corr: FloatArray,
    sharpe: FloatArray,
    pair_a: IntArray,
    pair_b: IntArray,
    ev: IntArray,
    cnt: IntArray,
) -> None:
    """Bench the lower-Sharpe member of each flagged pair of active strategies (SPEC §3).

    A pair is flagged when ``breach_run >= persistence``. Pairs are walked by ``corr``
    descending, then ``(a, b)`` (a stable sort of the row-major pair order); a pair is skipped
    once one of its members has been benched earlier in the walk. The member benched has the
    lower ``sharpe``, a NaN Sharpe counting as lowest; on a tie (two NaNs included) the one
    whose name sorts later. Each benching appends a ``BENCH`` row to ``ev``.
    """
    n_pairs = pair_a.shape[0]
    candidates = np.empty(n_pairs, dtype=np.int64)
    m = 0
    for p in range(n_pairs):
        if breach_run[p] >= persistence and not benched[pair_a[p]] and not benched[pair_b[p]]:
            candidates[m] = p
            m += 1
    if m == 0:
        return
    chosen = candidates[:m]
    order = np.argsort(-corr[chosen], kind="mergesort")
    for k in range(m):
        p = chosen[order[k]]
        a, b = pair_a[p], pair_b[p]
        if benched[a] or benched[b]:
            continue
        loser = _loser(a, b, sharpe)
        benched[loser] = True
        e = cnt[0]
        ev[e, 0] = t
        ev[e, 1] = BENCH
        ev[e, 2] = loser
        ev[e, 3] = a
        ev[e, 4] = b
        ev[e, 5] = p
        ev[e, 6] = 0
        cnt[0] = e + 1


def readmit_step(
    benched: BoolArray,
    mature: BoolArray,
    calm_run: IntArray,
    pairs: PairTable,
    persistence: int,
    names: tuple[str, ...],
) -> list[BenchEvent]:
    """Re-admit benched strategies in name order; mutates ``benched`` and returns the events.

    :func:`readmit_kernel` with the events' details as text.

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
    n = benched.shape[0]
    ev = np.zeros((max(n, 1), EVENT_FIELDS), dtype=np.int64)
    judges = np.zeros(max(n * n, 1), dtype=np.int64)
    cnt = np.zeros(2, dtype=np.int64)
    readmit_kernel(
        0,
        benched,
        np.ascontiguousarray(mature, dtype=np.bool_),
        np.ascontiguousarray(calm_run, dtype=np.int64),
        pairs.lookup.astype(np.int64),
        int(persistence),
        ev,
        judges,
        cnt,
    )
    out = []
    for e in ev[: cnt[0]].tolist():
        shown = [names[int(x)] for x in judges[e[5] : e[5] + e[6]]]
        out.append(BenchEvent("readmit", int(e[2]), readmit_detail(shown, persistence)))
    return out


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

    :func:`bench_kernel` with the events' details as text. Mutates ``benched``.

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
    n = benched.shape[0]
    ev = np.zeros((max(n, 1), EVENT_FIELDS), dtype=np.int64)
    cnt = np.zeros(2, dtype=np.int64)
    corr = np.ascontiguousarray(corr, dtype=np.float64)
    sharpe = np.ascontiguousarray(sharpe, dtype=np.float64)
    bench_kernel(
        0,
        benched,
        np.asarray(flagged, dtype=np.int64),
        1,
        corr,
        sharpe,
        pairs.a.astype(np.int64),
        pairs.b.astype(np.int64),
        ev,
        cnt,
    )
    return [
        BenchEvent(
            "bench",
            int(e[2]),
            bench_detail(
                names, e[3], e[4], e[2], float(corr[e[5]]), sharpe, threshold, persistence
            ),
        )
        for e in ev[: cnt[0]].tolist()
    ]
