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

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from allocator.allocation import final_weights
from allocator.arrays import BoolArray, FloatArray
from allocator.breaker import multipliers, transition_all
from allocator.config import AllocatorConfig
from allocator.correlation import PairTable, bench_step, readmit_step
from allocator.data import ReturnsPanel
from allocator.sizing import SizingSchedule, erc_weights, inverse_vol_weights
from allocator.states import BreakerState
from allocator.stats import PairCorrelationStream, window_vol_sharpe

__all__ = ["AllocatorEngine", "Event", "ReplayResult", "SessionDecision", "replay"]


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


class AllocatorEngine:
    """Stateful, deterministic session-by-session allocator for a fixed strategy list.

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
        n = len(strategies)
        self._n = n
        sizing, corr_cfg, brk = config.sizing, config.correlation, config.breaker
        self._ring_size = max(sizing.vol_window, brk.sharpe_window)
        self._ring = np.full((self._ring_size, n), np.nan)
        self._pos = -1
        self._filled = 0
        self.pairs = PairTable.build(n)
        self.corr_stream = PairCorrelationStream(
            n, window=corr_cfg.window, threshold=corr_cfg.threshold
        )
        self._age = np.zeros(n, dtype=np.int64)  # sessions since the first return, inclusive
        self._month: np.datetime64 | None = None
        self._mtd_growth = np.ones(n)
        self._mtd_missing = np.zeros(n, dtype=np.bool_)
        self.benched = np.zeros(n, dtype=np.bool_)
        self.state = np.zeros(n, dtype=np.int8)
        self.base_weight = np.zeros(n)
        self.schedule = SizingSchedule(every=sizing.rebalance_every)
        self.t = -1
        self.last_date: np.datetime64 | None = None

    @property
    def exists(self) -> BoolArray:
        """Strategies that have had a first non-missing return by the last session stepped."""
        return self._age > 0

    def _covariance(self, members: npt.NDArray[np.intp]) -> FloatArray:
        w = self.config.sizing.vol_window
        rows = (self._pos - np.arange(w - 1, -1, -1)) % self._ring_size
        window = self._ring[np.ix_(rows, members)]
        return np.atleast_2d(np.cov(window, rowvar=False, ddof=1))

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
        cfg = self.config
        x = np.asarray(row, dtype=np.float64)
        if x.shape != (self._n,):
            raise ValueError(f"expected {self._n} returns, got shape {x.shape}")
        day = np.datetime64(str(date)[:10], "D")
        if self.last_date is not None and day <= self.last_date:
            raise ValueError(f"sessions must increase: {day} after {self.last_date}")
        self.t += 1
        self.last_date = day
        t = self.t
        names = self.strategies

        # 1. Statistics through t.
        self._age += ((self._age > 0) | ~np.isnan(x)).astype(np.int64)
        exists = self._age > 0
        x = np.where(exists, x, np.nan)
        self._pos = (self._pos + 1) % self._ring_size
        self._ring[self._pos] = x
        self._filled += 1
        vol, sharpe = window_vol_sharpe(
            self._ring,
            self._pos,
            self._filled,
            vol_window=cfg.sizing.vol_window,
            sharpe_window=cfg.breaker.sharpe_window,
            annualization=cfg.sizing.annualization,
        )
        month = day.astype("datetime64[M]")
        if month != self._month:
            self._month = month
            self._mtd_growth[:] = 1.0
            self._mtd_missing[:] = False
        present = ~np.isnan(x)
        self._mtd_missing |= exists & ~present
        self._mtd_growth[present] *= 1.0 + x[present]
        mtd = np.where(exists & ~self._mtd_missing, self._mtd_growth - 1.0, np.nan)
        stream = self.corr_stream
        stream.step(x)

        # 2. Re-admission, then benching.
        before = self.benched.copy()
        mature = self._age >= cfg.correlation.window
        persistence = cfg.correlation.persistence
        bench_events = readmit_step(
            self.benched, mature, stream.calm_run, self.pairs, persistence, names
        )
        bench_events += bench_step(
            self.benched,
            stream.flagged(persistence),
            stream.corr,
            sharpe,
            self.pairs,
            cfg.correlation.threshold,
            persistence,
            names,
        )
        bench_changed = bool(np.any(before != self.benched))

        # 3. Base weights.
        eligible = ~self.benched & np.isfinite(vol) & (vol > 0)
        reason = self.schedule.reason(
            t, any_eligible=bool(eligible.any()), bench_changed=bench_changed
        )
        if reason is not None:
            if cfg.sizing.method == "erc" and eligible.any():
                members = np.flatnonzero(eligible)
                weights = np.zeros(self._n)
                weights[members] = erc_weights(self._covariance(members))
                self.base_weight = weights
            else:
                self.base_weight = inverse_vol_weights(vol, eligible)

        # 4. Breaker.
        new_state = transition_all(self.state, mtd, sharpe, cfg.breaker)
        breaker_events = [
            Event(
                day,
                "breaker",
                names[j],
                f"{BreakerState(int(self.state[j])).label}->{BreakerState(int(new_state[j])).label}",
            )
            for j in np.flatnonzero(new_state != self.state)
        ]
        self.state = new_state
        mult = multipliers(self.state, cfg.breaker)

        # 5. Allocation.
        final, capital = final_weights(self.base_weight, mult, self.benched, cfg.allocation)

        events = [Event(day, e.kind, names[e.index], e.detail) for e in bench_events]
        if reason is not None:
            events.append(Event(day, "rebalance", "", reason))
        events += breaker_events
        return SessionDecision(
            date=day,
            vol=vol,
            sharpe=sharpe,
            mtd=mtd,
            breaker_state=self.state.copy(),
            multiplier=mult,
            benched=self.benched.copy(),
            base_weight=self.base_weight.copy(),
            final_weight=final,
            capital=capital,
            events=tuple(events),
            recompute=reason,
        )


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


PairsSink = Callable[[np.datetime64, PairCorrelationStream, int], None]


def replay(
    panel: ReturnsPanel, config: AllocatorConfig, *, on_pairs: PairsSink | None = None
) -> ReplayResult:
    """Run the engine over every session of ``panel``.

    ``on_pairs(date, stream, persistence)`` is called after each session with the pair stream
    (its ``corr``, ``breach_run``, ``calm_run``), for writers that stream ``pairs.csv`` without
    keeping sessions × pairs in memory.

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
    out = ReplayResult(
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
    persistence = config.correlation.persistence
    for t in range(T):
        d = engine.step(panel.sessions[t], panel.values[t])
        out.vol[t] = d.vol
        out.sharpe[t] = d.sharpe
        out.mtd[t] = d.mtd
        out.breaker_state[t] = d.breaker_state
        out.multiplier[t] = d.multiplier
        out.benched[t] = d.benched
        out.base_weight[t] = d.base_weight
        out.final_weight[t] = d.final_weight
        out.capital[t] = d.capital
        out.events.extend(d.events)
        if on_pairs is not None:
            on_pairs(d.date, engine.corr_stream, persistence)
    return out
