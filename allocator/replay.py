"""The one engine that walks the sessions and makes every decision of SPEC §1–§6 (and §11).

:class:`AllocatorEngine` is fed one session at a time (its returns row, NaN where missing) and
returns a :class:`SessionDecision`: statistics, re-admissions and benchings, the recompute of
base weights, breaker transitions and the published allocation. :func:`replay` drives it over a
:class:`~allocator.data.ReturnsPanel`; the live pipeline calls the same engine (a replay of the
stored history whose last decision is "today"), so there is no second copy of any rule.

Order of work at the close of session ``t`` (decisions apply from ``t + 1``):

1. statistics through ``t``: ``vol_60d``, ``sharpe_90d``, ``mtd_return``, pair correlations and
   their ``breach_run``/``calm_run`` counters (for every strategy, benched or not);
2. re-admission, then benching (§3);
3. base weights, if a scheduled or event-driven recompute falls on ``t`` (§4);
4. the breaker (§5), for every strategy;
5. ``final_weight`` and ``capital`` (§6).

Why an engine stepped one session at a time rather than rules vectorised over the whole
history: the rules are path-dependent (the bench set, the recompute schedule and a latched
breaker depend on earlier decisions), and the same ``step`` serves the CLI replay, the
``rule_set`` asset, the demo's session-by-session backfill and the tests. Memory stays
O(strategies²) per session because pair values are handed to ``on_pairs`` instead of kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from allocator._jit import njit
from allocator.allocation import final_kernel
from allocator.arrays import BoolArray, FloatArray
from allocator.breaker import multiplier_kernel, transition_kernel
from allocator.config import AllocatorConfig
from allocator.correlation import (
    BENCH,
    EVENT_FIELDS,
    READMIT,
    PairTable,
    bench_detail,
    bench_kernel,
    readmit_detail,
    readmit_kernel,
)
from allocator.data import ReturnsPanel
from allocator.sizing import REASONS, erc_weights, inverse_vol_kernel, schedule_kernel
from allocator.states import BreakerState
from allocator.stats import (
    PairCorrelationStream,
    corr_values_step,
    update_runs,
    vol_sharpe_kernel,
)

__all__ = [
    "AllocatorEngine",
    "Event",
    "ReplayResult",
    "SessionDecision",
    "StatsBlock",
    "decide",
    "replay",
    "statistics",
]


@dataclass(frozen=True, slots=True)
class Event:
    """A row of ``events.csv`` (SPEC §11).

    Attributes
    ----------
    date : numpy.datetime64
        The decision session ``t`` (day precision); the decision applies from ``t + 1``.
    kind : str
        ``"rebalance"``, ``"bench"``, ``"readmit"`` or ``"breaker"``.
    strategy : str
        The strategy's name; empty for ``rebalance``.
    detail : str
        ``rebalance``: ``"scheduled"``, ``"event"`` or ``"scheduled+event"``; ``breaker``:
        ``"old->new"`` (e.g. ``"normal->half"``); ``bench``/``readmit``: free text for a person.
    """

    date: np.datetime64
    kind: str
    strategy: str
    detail: str


@dataclass(frozen=True, slots=True)
class SessionDecision:
    """Everything decided at the close of one session; arrays are per strategy, name order.

    ``breaker_state`` holds :class:`~allocator.states.BreakerState` codes. Weights are
    fractions of ``total_capital``; ``capital`` is in account currency.

    Attributes
    ----------
    date : numpy.datetime64
        The decision session ``t`` (day precision); the allocation applies from ``t + 1``.
    vol : numpy.ndarray of float64, shape (n,)
        ``vol_60d``: annualised volatility, a fraction, >= 0; NaN when undefined.
    sharpe : numpy.ndarray of float64, shape (n,)
        ``sharpe_90d``: annualised, risk-free 0, dimensionless; NaN when undefined.
    mtd : numpy.ndarray of float64, shape (n,)
        ``mtd_return``: simple return of the month so far, > -1; NaN when a return of the
        month is missing or the strategy does not exist yet.
    breaker_state : numpy.ndarray of int8, shape (n,)
        0 ``normal``, 1 ``half``, 2 ``halted``, after the breaker at ``t``.
    multiplier : numpy.ndarray of float64, shape (n,)
        Breaker multiplier in [0, 1]: 1, ``half_multiplier`` or 0.
    benched : numpy.ndarray of bool, shape (n,)
        True when benched by the correlation rule after this session's re-admissions and
        benchings.
    base_weight : numpy.ndarray of float64, shape (n,)
        Fraction of ``total_capital``, >= 0; sums to 1 over the strategies eligible at the
        last recompute (all 0 before the first one), held between recomputes.
    final_weight : numpy.ndarray of float64, shape (n,)
        Fraction of ``total_capital``, >= 0; ``base_weight × multiplier``, 0 when benched.
    capital : numpy.ndarray of float64, shape (n,)
        Account currency, >= 0; ``final_weight × total_capital`` (the budget from ``t + 1``).
    events : tuple of Event
        This session's events: re-admissions and benchings, then the rebalance, then the
        breaker changes.
    recompute : str or None
        Why base weights were recomputed at ``t`` (see
        :meth:`allocator.sizing.SizingSchedule.reason`); ``None`` when they were held.
    """

    date: np.datetime64
    vol: FloatArray
    sharpe: FloatArray
    mtd: FloatArray
    breaker_state: npt.NDArray[np.int8]
    multiplier: FloatArray
    benched: BoolArray
    base_weight: FloatArray
    final_weight: FloatArray
    capital: FloatArray
    events: tuple[Event, ...]
    recompute: str | None


@dataclass(slots=True)
class ReplayResult:
    """Every decision of a replay: ``(sessions, strategies)`` arrays plus the event log.

    Row ``t`` of each array is :class:`SessionDecision`'s field of the same name at session
    ``t``, with the same units and signs.

    Attributes
    ----------
    sessions : numpy.ndarray of datetime64[D], shape (T,)
        The sessions, ascending.
    strategies : tuple of str
        Strategy names in code-point order (the columns).
    vol, sharpe, mtd : numpy.ndarray of float64, shape (T, n)
        ``vol_60d`` (annualised fraction, >= 0), ``sharpe_90d`` (annualised), ``mtd_return``
        (simple return, > -1); NaN when undefined.
    breaker_state : numpy.ndarray of int8, shape (T, n)
        0 ``normal``, 1 ``half``, 2 ``halted``.
    multiplier : numpy.ndarray of float64, shape (T, n)
        Breaker multiplier in [0, 1].
    benched : numpy.ndarray of bool, shape (T, n)
        Benched by the correlation rule.
    base_weight, final_weight : numpy.ndarray of float64, shape (T, n)
        Fractions of ``total_capital``, >= 0.
    capital : numpy.ndarray of float64, shape (T, n)
        Account currency, >= 0; ``final_weight × total_capital``.
    events : list of Event
        Every event, in session order.
    event_counts : dict of str to int, optional
        ``benches``, ``readmits``, ``breaker_trips`` when the log itself was not built
        (:func:`decide` with ``events=False``); ``None`` otherwise.
    """

    sessions: npt.NDArray[np.datetime64]
    strategies: tuple[str, ...]
    vol: FloatArray
    sharpe: FloatArray
    mtd: FloatArray
    breaker_state: npt.NDArray[np.int8]
    multiplier: FloatArray
    benched: BoolArray
    base_weight: FloatArray
    final_weight: FloatArray
    capital: FloatArray
    events: list[Event] = field(default_factory=list)
    event_counts: dict[str, int] | None = None

    def last(self) -> dict[str, dict[str, float | str | bool]]:
        """Return the final session's allocation per strategy (for the terminal table).

        Returns
        -------
        dict of str to dict
            Per strategy name: ``vol_60d``, ``sharpe_90d``, ``breaker_state`` (its label),
            ``benched``, ``base_weight``, ``final_weight`` and ``capital``.
        """
        t = len(self.sessions) - 1
        return {
            name: {
                "vol_60d": float(self.vol[t, j]),
                "sharpe_90d": float(self.sharpe[t, j]),
                "breaker_state": BreakerState(int(self.breaker_state[t, j])).label,
                "benched": bool(self.benched[t, j]),
                "base_weight": float(self.base_weight[t, j]),
                "final_weight": float(self.final_weight[t, j]),
                "capital": float(self.capital[t, j]),
            }
            for j, name in enumerate(self.strategies)
        }


_LABELS = tuple(state.label for state in BreakerState)  # by state code
# Event kinds of the session kernel's buffer, after correlation's READMIT (0) and BENCH (1).
REBALANCE = 2
BREAKER = 3
# Status of _decide_block: every session done, stopped for an ERC solve, event buffer full.
_DONE, _NEEDS_ERC, _FULL = 0, 1, 2
# Sessions per statistics block: bounded so that a block's pair correlations stay <= 32 MB.
_BLOCK_PAIR_VALUES = 4_000_000
_MAX_BLOCK = 4096
# Rows of the event buffer at least: when it may not hold one more session, the kernel returns
# and Python drains it (each session needs at most 3n + 1 rows; the buffer has >= 8n + 8).
_EVENT_ROWS = 1024


@dataclass(slots=True)
class StatsBlock:
    """The threshold-independent statistics of consecutive sessions (SPEC §2, §3's correlation).

    They depend on the windows (``sizing.vol_window``, ``breaker.sharpe_window``,
    ``correlation.window``) and ``sizing.annualization`` only, never on a threshold, so a sweep
    computes them once per window set and every configuration's rules read them
    (:mod:`allocator.research`).

    Attributes
    ----------
    vol, sharpe, mtd : numpy.ndarray of float64, shape (B, n)
        ``vol_60d``, ``sharpe_90d``, ``mtd_return`` as in :class:`SessionDecision`.
    age : numpy.ndarray of int64, shape (B, n)
        Sessions since each strategy's first return, inclusive (0: does not exist yet).
    corr : numpy.ndarray of float64, shape (B, n_pairs)
        ``corr_90d`` per pair (:class:`~allocator.correlation.PairTable` order), NaN when
        undefined.
    """

    vol: FloatArray
    sharpe: FloatArray
    mtd: FloatArray
    age: npt.NDArray[np.int64]
    corr: FloatArray

    def rows(self, lo: int, hi: int) -> StatsBlock:
        """Return the sessions ``lo:hi`` of this block (views)."""
        return StatsBlock(
            self.vol[lo:hi], self.sharpe[lo:hi], self.mtd[lo:hi], self.age[lo:hi], self.corr[lo:hi]
        )


@njit
def _stats_block(
    values: FloatArray,
    months: npt.NDArray[np.int64],
    ring: FloatArray,
    rstate: npt.NDArray[np.int64],
    age: npt.NDArray[np.int64],
    growth: FloatArray,
    missing: BoolArray,
    c_ring: FloatArray,
    c_state: npt.NDArray[np.int64],
    c_nan: npt.NDArray[np.int64],
    c_eq: npt.NDArray[np.int64],
    c_centre: FloatArray,
    c_s1: FloatArray,
    c_s2: FloatArray,
    c_mag: FloatArray,
    vol_window: int,
    sharpe_window: int,
    annualization: float,
    out_vol: FloatArray,
    out_sharpe: FloatArray,
    out_mtd: FloatArray,
    out_age: npt.NDArray[np.int64],
    out_corr: FloatArray,
) -> None:
    """Step 1 of the session (statistics through ``t``) for every row of ``values``.

    ``rstate`` = [slot of the newest ring row, rows received, current month]. A value can only
    be present once its strategy exists, so the ring and the pair stream take the row as is.
    """
    size = ring.shape[0]
    n = values.shape[1]
    for s in range(values.shape[0]):
        x = values[s]
        for j in range(n):
            if age[j] > 0 or not math.isnan(x[j]):
                age[j] += 1
        pos = (rstate[0] + 1) % size
        rstate[0] = pos
        rstate[1] += 1
        ring[pos] = x
        vol_sharpe_kernel(
            ring,
            pos,
            rstate[1],
            vol_window,
            sharpe_window,
            annualization,
            out_vol[s],
            out_sharpe[s],
        )
        if months[s] != rstate[2]:
            rstate[2] = months[s]
            growth[:] = 1.0
            missing[:] = False
        for j in range(n):
            present = not math.isnan(x[j])
            exists = age[j] > 0
            if exists and not present:
                missing[j] = True
            if present:
                growth[j] *= 1.0 + x[j]
            out_mtd[s, j] = growth[j] - 1.0 if exists and not missing[j] else math.nan
            out_age[s, j] = age[j]
        corr_values_step(x, c_ring, c_state, c_nan, c_eq, c_centre, c_s1, c_s2, c_mag, out_corr[s])


@njit
def _decide_block(
    t0: int,
    start: int,
    resume: bool,
    vol: FloatArray,
    sharpe: FloatArray,
    mtd: FloatArray,
    age: npt.NDArray[np.int64],
    corr: FloatArray,
    params: FloatArray,
    benched: BoolArray,
    state: npt.NDArray[np.int8],
    base: FloatArray,
    breach: npt.NDArray[np.int64],
    calm: npt.NDArray[np.int64],
    anchor: npt.NDArray[np.int64],
    pair_a: npt.NDArray[np.int64],
    pair_b: npt.NDArray[np.int64],
    lookup: npt.NDArray[np.int64],
    out_state: npt.NDArray[np.int8],
    out_mult: FloatArray,
    out_benched: BoolArray,
    out_base: FloatArray,
    out_final: FloatArray,
    out_capital: FloatArray,
    ev: npt.NDArray[np.int64],
    judges: npt.NDArray[np.int64],
    cnt: npt.NDArray[np.int64],
) -> tuple[int, int]:
    """Run steps 2-5 of the session for rows ``start..`` of a statistics block.

    ``params`` = [threshold, persistence, correlation window, rebalance_every, erc (0/1),
    half_at, halt_at, recovery_sharpe, half_multiplier, redistribute (0/1), total_capital].
    Returns ``(row, status)``: ``_DONE``; ``_NEEDS_ERC`` when row's recompute needs the ERC
    solver (steps 2-3 are done; the caller sets ``base`` and calls again with ``resume``);
    ``_FULL`` when the event buffer may not hold one more session (nothing of row is done).
    """
    threshold = params[0]
    persistence = int(params[1])
    window = int(params[2])
    every = int(params[3])
    erc = params[4] != 0.0
    n = benched.shape[0]
    before = np.empty(n, dtype=np.bool_)
    mature = np.empty(n, dtype=np.bool_)
    eligible = np.empty(n, dtype=np.bool_)
    new_state = np.empty(n, dtype=np.int8)
    s = start
    while s < vol.shape[0]:
        t = t0 + s
        if not resume:
            # A session logs at most n re-admissions, n benchings, 1 rebalance, n breaker moves.
            if cnt[0] + 3 * n + 1 > ev.shape[0] or cnt[1] + n * n > judges.shape[0]:
                return s, _FULL
            # 2. Re-admission, then benching.
            update_runs(corr[s], threshold, breach, calm)
            for j in range(n):
                before[j] = benched[j]
                mature[j] = age[s, j] >= window
            if benched.any():
                readmit_kernel(t, benched, mature, calm, lookup, persistence, ev, judges, cnt)
            flagged = False  # bench_kernel allocates its walk: call it only when needed
            for q in range(breach.shape[0]):
                if breach[q] >= persistence:
                    flagged = True
                    break
            if flagged:
                bench_kernel(
                    t, benched, breach, persistence, corr[s], sharpe[s], pair_a, pair_b, ev, cnt
                )
            changed = False
            any_eligible = False
            for j in range(n):
                changed = changed or before[j] != benched[j]
                v = vol[s, j]
                eligible[j] = not benched[j] and math.isfinite(v) and v > 0.0
                any_eligible = any_eligible or eligible[j]
            # 3. Base weights.
            code = schedule_kernel(t, anchor, every, any_eligible, changed)
            if code != 0:
                e = cnt[0]
                ev[e, 0] = t
                ev[e, 1] = REBALANCE
                ev[e, 2] = code
                cnt[0] = e + 1
                if erc and any_eligible:
                    return s, _NEEDS_ERC
                inverse_vol_kernel(vol[s], eligible, base)
        resume = False
        # 4. Breaker.
        transition_kernel(state, mtd[s], sharpe[s], params[5], params[6], params[7], new_state)
        for j in range(n):
            if new_state[j] != state[j]:
                e = cnt[0]
                ev[e, 0] = t
                ev[e, 1] = BREAKER
                ev[e, 2] = j
                ev[e, 3] = state[j]
                ev[e, 4] = new_state[j]
                cnt[0] = e + 1
                state[j] = new_state[j]
        # 5. Allocation.
        multiplier_kernel(state, params[8], out_mult[s])
        final_kernel(
            base, out_mult[s], benched, params[9] != 0.0, params[10], out_final[s], out_capital[s]
        )
        out_state[s] = state
        out_benched[s] = benched
        out_base[s] = base
        s += 1
    return s, _DONE


class _Statistics:
    """The streaming state of step 1 (ring, MTD, pair stream) for a fixed strategy count."""

    def __init__(self, n: int, config: AllocatorConfig) -> None:
        sizing, brk = config.sizing, config.breaker
        self.n = n
        self.vol_window = sizing.vol_window
        self.sharpe_window = brk.sharpe_window
        self.annualization = float(sizing.annualization)
        self.ring = np.full((max(sizing.vol_window, brk.sharpe_window), n), np.nan)
        self.rstate = np.array([-1, 0, np.iinfo(np.int64).min], dtype=np.int64)
        self.age = np.zeros(n, dtype=np.int64)
        self.growth = np.ones(n)
        self.missing = np.zeros(n, dtype=np.bool_)
        self.stream = PairCorrelationStream(
            n, window=config.correlation.window, threshold=config.correlation.threshold
        )
        self.n_pairs = n * (n - 1) // 2

    def run(self, values: FloatArray, months: npt.NDArray[np.int64]) -> StatsBlock:
        """Statistics of the sessions ``values`` (rows), continuing the stream."""
        rows = values.shape[0]
        out = StatsBlock(
            vol=np.empty((rows, self.n)),
            sharpe=np.empty((rows, self.n)),
            mtd=np.empty((rows, self.n)),
            age=np.empty((rows, self.n), dtype=np.int64),
            corr=np.empty((rows, self.n_pairs)),
        )
        st = self.stream
        _stats_block(
            np.ascontiguousarray(values, dtype=np.float64),
            months,
            self.ring,
            self.rstate,
            self.age,
            self.growth,
            self.missing,
            st._ring,
            st._state,
            st._nan_count,
            st._eq_run,
            st._centre,
            st._s1,
            st._s2,
            st._mag,
            self.vol_window,
            self.sharpe_window,
            self.annualization,
            out.vol,
            out.sharpe,
            out.mtd,
            out.age,
            out.corr,
        )
        if rows:
            st.corr[:] = out.corr[-1]
        return out


def statistics(panel: ReturnsPanel, config: AllocatorConfig) -> StatsBlock:
    """Compute the threshold-independent statistics of every session of ``panel`` at once.

    What a sweep shares between the configurations that have the same windows
    (``sizing.vol_window``, ``breaker.sharpe_window``, ``correlation.window``,
    ``sizing.annualization``); :func:`decide` runs the rules over it.

    Parameters
    ----------
    panel : ReturnsPanel
        The returns on the session clock.
    config : AllocatorConfig
        Only its windows and annualisation are read.

    Returns
    -------
    StatsBlock
        ``T`` rows, one per session.
    """
    n = len(panel.strategies)
    return _Statistics(n, config).run(panel.values, _months(panel.sessions))


def _months(sessions: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    return np.ascontiguousarray(
        np.asarray(sessions).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    )


@dataclass(slots=True)
class _Decisions:
    """Output rows of :func:`_decide_block` (views into a result, or a one-session buffer)."""

    breaker_state: npt.NDArray[np.int8]
    multiplier: FloatArray
    benched: BoolArray
    base_weight: FloatArray
    final_weight: FloatArray
    capital: FloatArray

    @classmethod
    def empty(cls, rows: int, n: int) -> _Decisions:
        return cls(
            np.empty((rows, n), dtype=np.int8),
            np.empty((rows, n)),
            np.empty((rows, n), dtype=np.bool_),
            np.empty((rows, n)),
            np.empty((rows, n)),
            np.empty((rows, n)),
        )


Covariance = Callable[[int, npt.NDArray[np.intp]], FloatArray]


class _Rules:
    """The state of steps 2-5 (bench set, breaker, base weights, counters, recompute clock)."""

    def __init__(
        self,
        strategies: tuple[str, ...],
        config: AllocatorConfig,
        breach: npt.NDArray[np.int64] | None = None,
        calm: npt.NDArray[np.int64] | None = None,
    ) -> None:
        n = len(strategies)
        cfg = config
        self.names = strategies
        self.config = config
        self.pairs = PairTable.build(n)
        self.pair_a = self.pairs.a.astype(np.int64)
        self.pair_b = self.pairs.b.astype(np.int64)
        self.lookup = self.pairs.lookup.astype(np.int64)
        n_pairs = self.pair_a.shape[0]
        self.breach = np.zeros(n_pairs, dtype=np.int64) if breach is None else breach
        self.calm = np.zeros(n_pairs, dtype=np.int64) if calm is None else calm
        self.benched = np.zeros(n, dtype=np.bool_)
        self.state = np.zeros(n, dtype=np.int8)
        self.base = np.zeros(n)
        self.anchor = np.array([-1], dtype=np.int64)
        self.params = np.array(
            [
                cfg.correlation.threshold,
                cfg.correlation.persistence,
                cfg.correlation.window,
                cfg.sizing.rebalance_every,
                1.0 if cfg.sizing.method == "erc" else 0.0,
                cfg.breaker.half_at,
                cfg.breaker.halt_at,
                cfg.breaker.recovery_sharpe,
                cfg.breaker.half_multiplier,
                1.0 if cfg.allocation.redistribute_freed_capital else 0.0,
                float(cfg.allocation.total_capital),
            ]
        )
        self.ev = np.zeros((max(8 * n + 8, _EVENT_ROWS), EVENT_FIELDS), dtype=np.int64)
        self.judges = np.zeros(max(2 * n * n, _EVENT_ROWS), dtype=np.int64)
        self.cnt = np.zeros(2, dtype=np.int64)
        self.keep_events = True
        self.counts = {"benches": 0, "readmits": 0, "breaker_trips": 0}

    def run(
        self,
        t0: int,
        dates: npt.NDArray[np.datetime64],
        stats: StatsBlock,
        out: _Decisions,
        covariance: Covariance,
    ) -> list[Event]:
        """Decide the sessions of ``stats`` (global indices from ``t0``); return their events."""
        events: list[Event] = []
        start, resume = 0, False
        while True:
            row, status = _decide_block(
                t0,
                start,
                resume,
                stats.vol,
                stats.sharpe,
                stats.mtd,
                stats.age,
                stats.corr,
                self.params,
                self.benched,
                self.state,
                self.base,
                self.breach,
                self.calm,
                self.anchor,
                self.pair_a,
                self.pair_b,
                self.lookup,
                out.breaker_state,
                out.multiplier,
                out.benched,
                out.base_weight,
                out.final_weight,
                out.capital,
                self.ev,
                self.judges,
                self.cnt,
            )
            events += self._drain(t0, dates, stats)
            if status == _DONE:
                return events
            if status == _NEEDS_ERC:
                members = np.flatnonzero(
                    ~self.benched & np.isfinite(stats.vol[row]) & (stats.vol[row] > 0)
                )
                weights = np.zeros(len(self.names))
                weights[members] = erc_weights(covariance(t0 + row, members))
                self.base[:] = weights
                start, resume = row, True
            else:
                start, resume = row, False

    def _drain(self, t0: int, dates: npt.NDArray[np.datetime64], stats: StatsBlock) -> list[Event]:
        """Turn the buffered events into :class:`Event` (details as text) and empty the buffer.

        With :attr:`keep_events` false only :attr:`counts` are kept (what a sweep needs).
        """
        if not self.keep_events:
            rows = self.ev[: self.cnt[0]]
            kind = rows[:, 1]
            self.counts["benches"] += int((kind == BENCH).sum())
            self.counts["readmits"] += int((kind == READMIT).sum())
            self.counts["breaker_trips"] += int(
                ((kind == BREAKER) & (rows[:, 4] > rows[:, 3])).sum()
            )
            self.cnt[:] = 0
            return []
        names = self.names
        cfg = self.config.correlation
        out: list[Event] = []
        for t, kind, j, a, b, x, m in self.ev[: self.cnt[0]].tolist():
            day = dates[t - t0]
            if kind == READMIT:
                shown = [names[k] for k in self.judges[x : x + m].tolist()]
                out.append(Event(day, "readmit", names[j], readmit_detail(shown, cfg.persistence)))
            elif kind == BENCH:
                s = t - t0
                detail = bench_detail(
                    names,
                    a,
                    b,
                    j,
                    float(stats.corr[s, x]),
                    stats.sharpe[s],
                    cfg.threshold,
                    cfg.persistence,
                )
                out.append(Event(day, "bench", names[j], detail))
            elif kind == REBALANCE:
                out.append(Event(day, "rebalance", "", str(REASONS[j])))
            else:
                out.append(Event(day, "breaker", names[j], f"{_LABELS[a]}->{_LABELS[b]}"))
        self.cnt[:] = 0
        return out


class AllocatorEngine:
    """Stateful, deterministic session-by-session allocator for a fixed strategy list.

    The rules run in compiled kernels (:func:`_stats_block` for step 1, :func:`_decide_block`
    for steps 2-5, which call the rule kernels of :mod:`allocator.correlation`,
    :mod:`allocator.sizing`, :mod:`allocator.breaker` and :mod:`allocator.allocation`);
    :meth:`step` feeds them one session, :func:`replay` feeds them blocks of sessions, with
    identical decisions (a block is the same loop over the same state).

    Parameters
    ----------
    strategies : tuple of str
        Unique strategy names in code-point order; every row passed to :meth:`step` has one
        return per name, in this order.
    config : AllocatorConfig
        The rules' parameters (windows, thresholds, sizing method, capital).

    Raises
    ------
    ValueError
        ``strategies`` is not sorted or has a duplicate.
    """

    def __init__(self, strategies: tuple[str, ...], config: AllocatorConfig) -> None:
        if list(strategies) != sorted(strategies):
            raise ValueError("strategies must be given in code-point name order")
        if len(set(strategies)) != len(strategies):
            raise ValueError("strategy names must be unique")
        self.strategies = strategies
        self.config = config
        self._n = len(strategies)
        self._stats = _Statistics(self._n, config)
        self.corr_stream = self._stats.stream
        self._rules = _Rules(
            strategies, config, self.corr_stream.breach_run, self.corr_stream.calm_run
        )
        self.pairs = self._rules.pairs
        self.t = -1
        self.last_date: np.datetime64 | None = None

    @property
    def exists(self) -> BoolArray:
        """Strategies that have had a first non-missing return by the last session stepped."""
        return self._stats.age > 0

    @property
    def benched(self) -> BoolArray:
        """The bench set after the last session stepped."""
        return self._rules.benched

    @property
    def state(self) -> npt.NDArray[np.int8]:
        """Breaker state codes after the last session stepped."""
        return self._rules.state

    @property
    def base_weight(self) -> FloatArray:
        """Base weights held after the last session stepped."""
        return self._rules.base

    def _ring_covariance(self, t: int, members: npt.NDArray[np.intp]) -> FloatArray:
        w = self.config.sizing.vol_window
        ring = self._stats.ring
        rows = (int(self._stats.rstate[0]) - np.arange(w - 1, -1, -1)) % ring.shape[0]
        return np.atleast_2d(np.cov(ring[np.ix_(rows, members)], rowvar=False, ddof=1))

    def step(self, date: np.datetime64, row: FloatArray) -> SessionDecision:
        """Close session ``date`` with its returns ``row`` (NaN = missing / not yet existing).

        Parameters
        ----------
        date : numpy.datetime64
            The session (any precision; the day is used). Each call's day must be later than
            the previous one's.
        row : numpy.ndarray of float64, shape (n,)
            The session's daily simple returns in name order, NaN where missing; a NaN before a
            strategy's first return means "does not exist yet".

        Returns
        -------
        SessionDecision
            Everything decided at the close of ``date``.

        Raises
        ------
        ValueError
            ``row`` has the wrong shape, or ``date`` is not after the previous session.
        """
        x = np.asarray(row, dtype=np.float64)
        if x.shape != (self._n,):
            raise ValueError(f"expected {self._n} returns, got shape {x.shape}")
        day = np.datetime64(str(date)[:10], "D")
        if self.last_date is not None and day <= self.last_date:
            raise ValueError(f"sessions must increase: {day} after {self.last_date}")
        self.t += 1
        self.last_date = day
        dates = np.array([day])
        stats = self._stats.run(x[None, :], _months(dates))
        out = _Decisions.empty(1, self._n)
        events = self._rules.run(self.t, dates, stats, out, self._ring_covariance)
        recompute = next((e.detail for e in events if e.kind == "rebalance"), None)
        return SessionDecision(
            date=day,
            vol=stats.vol[0],
            sharpe=stats.sharpe[0],
            mtd=stats.mtd[0],
            breaker_state=out.breaker_state[0],
            multiplier=out.multiplier[0],
            benched=out.benched[0],
            base_weight=out.base_weight[0],
            final_weight=out.final_weight[0],
            capital=out.capital[0],
            events=tuple(events),
            recompute=recompute,
        )


PairsSink = Callable[[np.datetime64, PairCorrelationStream, int], None]


def _empty_result(panel: ReturnsPanel) -> ReplayResult:
    T, n = panel.values.shape
    return ReplayResult(
        sessions=panel.sessions,
        strategies=panel.strategies,
        vol=np.empty((T, n)),
        sharpe=np.empty((T, n)),
        mtd=np.empty((T, n)),
        breaker_state=np.empty((T, n), dtype=np.int8),
        multiplier=np.empty((T, n)),
        benched=np.empty((T, n), dtype=np.bool_),
        base_weight=np.empty((T, n)),
        final_weight=np.empty((T, n)),
        capital=np.empty((T, n)),
    )


def _views(out: ReplayResult, lo: int, hi: int) -> _Decisions:
    return _Decisions(
        out.breaker_state[lo:hi],
        out.multiplier[lo:hi],
        out.benched[lo:hi],
        out.base_weight[lo:hi],
        out.final_weight[lo:hi],
        out.capital[lo:hi],
    )


def _panel_covariance(values: FloatArray, config: AllocatorConfig) -> Covariance:
    """ERC's covariance at session ``t`` from the panel: the members' last ``vol_window`` rows.

    Members have a defined ``vol_60d``, so these rows hold no missing value and equal the
    engine's ring rows: the same matrix as :meth:`AllocatorEngine.step` computes.
    """
    w = config.sizing.vol_window

    def covariance(t: int, members: npt.NDArray[np.intp]) -> FloatArray:
        # C order, as the ring's fancy-indexed copy: np.cov's sums then run in the same order.
        window = np.ascontiguousarray(values[t - w + 1 : t + 1][:, members])
        return np.atleast_2d(np.cov(window, rowvar=False, ddof=1))

    return covariance


def replay(
    panel: ReturnsPanel, config: AllocatorConfig, *, on_pairs: PairsSink | None = None
) -> ReplayResult:
    """Run the engine over every session of ``panel``.

    The sessions go through the compiled kernels in blocks (one block for a small panel), so
    the whole replay runs in compiled code; with ``on_pairs`` they go one at a time.
    ``on_pairs(date, stream, persistence)`` is then called after each session with the pair
    stream (its ``corr``, ``breach_run``, ``calm_run``), for writers that stream ``pairs.csv``
    without keeping sessions × pairs in memory.

    Parameters
    ----------
    panel : ReturnsPanel
        The returns on the session clock (:func:`allocator.data.build_panel`).
    config : AllocatorConfig
        The rules' parameters.
    on_pairs : callable, optional
        ``on_pairs(date, stream, persistence)``, called after every session; the stream's
        arrays are overwritten by the next session, so copy what must be kept.

    Returns
    -------
    ReplayResult
        Every session's decisions and the event log.
    """
    T, n = panel.values.shape
    engine = AllocatorEngine(panel.strategies, config)
    out = _empty_result(panel)
    months = _months(panel.sessions)
    dates = np.asarray(panel.sessions).astype("datetime64[D]")
    covariance = _panel_covariance(panel.values, config)
    n_pairs = n * (n - 1) // 2
    block = (
        1
        if on_pairs is not None
        else max(1, min(_MAX_BLOCK, _BLOCK_PAIR_VALUES // max(n_pairs, 1)))
    )
    persistence = config.correlation.persistence
    for lo in range(0, T, block):
        hi = min(T, lo + block)
        stats = engine._stats.run(panel.values[lo:hi], months[lo:hi])
        out.vol[lo:hi] = stats.vol
        out.sharpe[lo:hi] = stats.sharpe
        out.mtd[lo:hi] = stats.mtd
        out.events.extend(
            engine._rules.run(lo, dates[lo:hi], stats, _views(out, lo, hi), covariance)
        )
        if on_pairs is not None:
            on_pairs(dates[lo], engine.corr_stream, persistence)
    return out


def decide(
    panel: ReturnsPanel,
    config: AllocatorConfig,
    stats: StatsBlock,
    *,
    events: bool = True,
) -> ReplayResult:
    """Run the rules (steps 2-5) of ``config`` over precomputed statistics of ``panel``.

    ``decide(panel, c, statistics(panel, c))`` equals ``replay(panel, c)`` exactly (the same
    kernels over the same state, in one block); a sweep reuses one ``stats`` for every
    configuration with the same windows.

    Parameters
    ----------
    panel : ReturnsPanel
        The returns on the session clock.
    config : AllocatorConfig
        The rules' parameters; its windows and annualisation must be those ``stats`` was
        computed with.
    stats : StatsBlock
        :func:`statistics` of ``panel``, one row per session.
    events : bool, default True
        Build the event log; when false, only :attr:`ReplayResult.event_counts` (benches,
        re-admissions, breaker trips) is filled, which is all a sweep's summary needs.

    Returns
    -------
    ReplayResult
        Every session's decisions and the event log (or its counts).
    """
    T = panel.values.shape[0]
    if stats.vol.shape[0] != T:
        raise ValueError(f"statistics have {stats.vol.shape[0]} sessions, the panel {T}")
    out = _empty_result(panel)
    out.vol[:] = stats.vol
    out.sharpe[:] = stats.sharpe
    out.mtd[:] = stats.mtd
    dates = np.asarray(panel.sessions).astype("datetime64[D]")
    rules = _Rules(panel.strategies, config)
    rules.keep_events = events
    covariance = _panel_covariance(panel.values, config)
    out.events.extend(rules.run(0, dates, stats, _views(out, 0, T), covariance))
    if not events:
        out.event_counts = dict(rules.counts)
    return out
