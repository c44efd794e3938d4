"""Rolling statistics of SPEC §2 and the pair counters of SPEC §3, as streaming kernels.

All windows use exactly the last ``W`` sessions and are defined only when all ``W`` values are
present (pandas ``rolling(W, min_periods=W)``). A window whose values are all equal (compared
exactly, not through a floating-point std) has vol 0, Sharpe NaN and NaN correlations.

* :func:`window_vol_sharpe` computes ``vol`` and ``sharpe`` for every strategy at one session
  from a ring buffer, two-pass (mean, then centred squares) so that it equals pandas to 1e-9.
* :class:`PairCorrelationStream` keeps, for every unordered pair, running co-moment sums over
  the window (rank-one add and remove per session, shifted by a per-strategy centre and rebuilt
  exactly every ``W`` sessions so rounding cannot drift, or sooner when a value huge next to
  the rest of the window leaves it), the current correlation and the
  ``breach_run``/``calm_run`` counters of SPEC §3. Memory is O(strategies² + W × strategies):
  it never grows with the number of sessions.
* :func:`rolling_corr_all_pairs` runs the same kernel over a whole matrix (for oracles and
  benchmarks).

Pairs are the upper triangle ``i < j`` of the name-sorted strategies, in row-major order.

Why streaming co-moments rather than a rolling correlation per pair over the whole history: the
replay keeps only the current session's pair values, so 500 strategies (124,750 pairs) over
2,520 sessions never hold the 2.5 GB that one float64 correlation per (session, pair) would
take (``replay_500_peak_mb`` in ``docs/performance.md``), and one session costs amortised
O(strategies²) whatever the window. The kernels are compiled with numba
(:func:`allocator._jit.njit`), so this module is kept off the per-bar path.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from allocator._jit import njit
from allocator.arrays import FloatArray, IntArray

__all__ = [
    "PairCorrelationStream",
    "corr_values_step",
    "pair_index",
    "rolling_corr_all_pairs",
    "update_runs",
    "vol_sharpe_kernel",
    "window_vol_sharpe",
]


# Rebuild the running sums once the squares they absorbed exceed the window's own centred sum
# of squares by this factor: rounding then stays near 1e-16 * 1e6 relative.
_DRIFT_LIMIT = 1e6


def pair_index(n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Return the ``(a, b)`` index arrays of the ``n (n - 1) / 2`` pairs ``a < b``, row-major."""
    a, b = np.triu_indices(n, k=1)
    return a.astype(np.intp), b.astype(np.intp)


@njit
def _window_moments(
    ring: FloatArray, pos: int, filled: int, window: int, j: int
) -> tuple[float, float, bool]:
    """Mean, sample variance and all-equal flag of strategy ``j``'s last ``window`` values.

    ``ring`` holds the last ``ring.shape[0]`` rows; ``pos`` is the slot of the newest row.
    Returns NaN mean when fewer than ``window`` rows exist or any value is missing.
    """
    size = ring.shape[0]
    if filled < window:
        return math.nan, math.nan, False
    total = 0.0
    first = ring[pos, j]
    equal = True
    for k in range(window):
        v = ring[(pos - k) % size, j]
        if math.isnan(v):
            return math.nan, math.nan, False
        if v != first:
            equal = False
        total += v
    mean = total / window
    if equal:
        return mean, 0.0, True
    ss = 0.0
    for k in range(window):
        d = ring[(pos - k) % size, j] - mean
        ss += d * d
    return mean, ss / (window - 1), False


@njit
def _vol_sharpe_kernel(
    ring: FloatArray,
    pos: int,
    filled: int,
    vol_window: int,
    sharpe_window: int,
    annualization: float,
    vol_out: FloatArray,
    sharpe_out: FloatArray,
) -> None:
    root = math.sqrt(annualization)
    for j in range(ring.shape[1]):
        _, var, equal = _window_moments(ring, pos, filled, vol_window, j)
        if math.isnan(var):
            vol_out[j] = math.nan
        elif equal:
            vol_out[j] = 0.0
        else:
            vol_out[j] = math.sqrt(var) * root
        mean, var, equal = _window_moments(ring, pos, filled, sharpe_window, j)
        if math.isnan(var) or equal:
            sharpe_out[j] = math.nan
        else:
            sharpe_out[j] = mean / math.sqrt(var) * root


vol_sharpe_kernel = _vol_sharpe_kernel  # for the engine's compiled statistics block


def window_vol_sharpe(
    ring: FloatArray,
    pos: int,
    filled: int,
    *,
    vol_window: int,
    sharpe_window: int,
    annualization: float,
) -> tuple[FloatArray, FloatArray]:
    """Compute annualised ``vol`` and ``sharpe`` per strategy at the newest row of ``ring``.

    ``vol`` is the sample std (ddof 1) of the last ``vol_window`` rows × sqrt(annualization);
    ``sharpe`` is mean / sample std of the last ``sharpe_window`` rows × sqrt(annualization),
    risk-free 0. A window with a missing value, or fewer rows than the window, is undefined
    (NaN); an all-equal window (compared exactly) has vol 0 and Sharpe NaN.

    Parameters
    ----------
    ring : numpy.ndarray of float64, shape (size, n)
        The last ``size`` daily simple returns per strategy, NaN where missing; ``size`` must
        be at least the larger window.
    pos : int
        Slot of the newest row (``ring[pos]``); older rows precede it cyclically.
    filled : int
        How many rows the ring has received in total (a window needs ``filled >= W``).
    vol_window, sharpe_window : int
        Window lengths in sessions, >= 2.
    annualization : float
        Sessions per year (252 by default in the config).

    Returns
    -------
    vol : numpy.ndarray of float64, shape (n,)
        Annualised volatility, a fraction (0.15 = 15%), >= 0 or NaN.
    sharpe : numpy.ndarray of float64, shape (n,)
        Annualised Sharpe ratio, dimensionless, or NaN.
    """
    n = ring.shape[1]
    vol = np.empty(n)
    sharpe = np.empty(n)
    _vol_sharpe_kernel(
        ring, pos, filled, vol_window, sharpe_window, float(annualization), vol, sharpe
    )
    return vol, sharpe


@njit
def _corr_rebuild(
    ring: FloatArray, window: int, filled: int, centre: FloatArray, s1: FloatArray, s2: FloatArray
) -> None:
    """Recompute the shifted sums exactly from the ring (centre = window mean, 0 if none).

    Missing values enter as 0 after the shift, so ``s2[i, j]`` sums over the rows where both
    are present and ``s1[i]`` over the rows where ``i`` is: exactly what the updates maintain.
    """
    n = ring.shape[1]
    rows = min(filled, window)
    z = np.zeros((rows, n))
    for i in range(n):
        tot = 0.0
        cnt = 0
        for k in range(rows):
            v = ring[k, i]
            if not math.isnan(v):
                tot += v
                cnt += 1
        centre[i] = tot / cnt if cnt > 0 else 0.0
    for k in range(rows):
        for i in range(n):
            v = ring[k, i]
            z[k, i] = 0.0 if math.isnan(v) else v - centre[i]
    for i in range(n):
        acc = 0.0
        for k in range(rows):
            acc += z[k, i]
        s1[i] = acc
        for j in range(i, n):
            s2[i, j] = 0.0
    for k in range(rows):
        for i in range(n):
            zi = z[k, i]
            if zi != 0.0:
                for j in range(i, n):
                    s2[i, j] += zi * z[k, j]


@njit
def _corr_step(
    x: FloatArray,
    ring: FloatArray,
    state: IntArray,
    nan_count: IntArray,
    eq_run: IntArray,
    centre: FloatArray,
    s1: FloatArray,
    s2: FloatArray,
    mag: FloatArray,
    threshold: float,
    corr: FloatArray,
    breach: IntArray,
    calm: IntArray,
) -> None:
    """Advance the stream by one session: the correlations, then the run counters."""
    corr_values_step(x, ring, state, nan_count, eq_run, centre, s1, s2, mag, corr)
    update_runs(corr, threshold, breach, calm)


@njit
def corr_values_step(
    x: FloatArray,
    ring: FloatArray,
    state: IntArray,
    nan_count: IntArray,
    eq_run: IntArray,
    centre: FloatArray,
    s1: FloatArray,
    s2: FloatArray,
    mag: FloatArray,
    corr: FloatArray,
) -> None:
    """Advance the correlations by one session with row ``x`` (NaN = missing).

    The threshold-independent half of a stream step (the engine's statistics block runs it;
    the counters follow in :func:`update_runs`).

    ``state`` = [slot of the next write, rows received, rows since the last rebuild].
    ``mag[i]`` is the sum of squared shifted values added to or removed from ``s2[i, i]`` since
    the last rebuild: rounding error in the sums is about ``eps * mag``, so when ``mag`` dwarfs
    the window's own sum of squares (a huge value just left the window) the sums are rebuilt.
    """
    window = ring.shape[0]
    n = ring.shape[1]
    slot = state[0]
    filled = state[1]
    full_before = filled >= window
    prev_slot = slot - 1 if slot > 0 else window - 1
    z = np.empty(n)  # entering row, shifted, missing -> 0
    y = np.empty(n)  # leaving row, shifted, missing -> 0
    for i in range(n):
        v = x[i]
        old = ring[slot, i] if full_before else math.nan
        if full_before and math.isnan(old):
            nan_count[i] -= 1
        if math.isnan(v):
            nan_count[i] += 1
            eq_run[i] = 0
            z[i] = 0.0
        else:
            if eq_run[i] > 0 and v == ring[prev_slot, i]:
                eq_run[i] += 1
            else:
                eq_run[i] = 1
            z[i] = v - centre[i]
        y[i] = 0.0 if math.isnan(old) else old - centre[i]
        ring[slot, i] = v
    filled += 1
    state[0] = slot + 1 if slot + 1 < window else 0
    state[1] = filled
    w = float(window)
    rebuild = state[2] + 1 >= window
    if not rebuild:
        state[2] += 1
        for i in range(n):
            zi = z[i]
            yi = y[i]
            s1[i] += zi - yi
            mag[i] += zi * zi + yi * yi
            for j in range(i, n):
                s2[i, j] += zi * z[j] - yi * y[j]
        for i in range(n):
            centred = s2[i, i] - s1[i] * s1[i] / w
            if centred > 0.0 and mag[i] > _DRIFT_LIMIT * centred:
                rebuild = True
                break
    if rebuild:
        _corr_rebuild(ring, window, filled, centre, s1, s2)
        for i in range(n):
            mag[i] = s2[i, i]
        state[2] = 0
    # Correlations and counters for every pair.
    full = filled >= window
    var = np.empty(n)
    ok = np.empty(n, dtype=np.bool_)
    for i in range(n):
        var[i] = s2[i, i] - s1[i] * s1[i] / w
        ok[i] = full and nan_count[i] == 0 and eq_run[i] < window
    p = 0
    for i in range(n):
        for j in range(i + 1, n):
            c = math.nan
            if ok[i] and ok[j]:
                den = var[i] * var[j]
                if den > 0.0:
                    c = (s2[i, j] - s1[i] * s1[j] / w) / math.sqrt(den)
            corr[p] = c
            p += 1


@njit
def update_runs(corr: FloatArray, threshold: float, breach: IntArray, calm: IntArray) -> None:
    """Advance SPEC §3's ``breach_run`` / ``calm_run`` counters by one session, in place.

    A pair breaches when ``corr > threshold`` (strict) and is calm when ``corr <= threshold``;
    a NaN compares false both ways and resets both runs. The counters are the only part of the
    pair statistics that depends on the threshold, so a sweep over thresholds shares the
    correlations and runs only this per configuration (:mod:`allocator.research`).
    """
    for q in range(corr.shape[0]):
        c = corr[q]
        above = c > threshold
        calm_now = c <= threshold
        breach[q] = (breach[q] + 1) * above
        calm[q] = (calm[q] + 1) * calm_now


class PairCorrelationStream:
    """Streaming all-pairs rolling Pearson correlation with the SPEC §3 run counters.

    Call :meth:`step` once per session, in order, with that session's returns (NaN for a
    missing value or a strategy that does not exist yet). After a step, :attr:`corr`,
    :attr:`breach_run` and :attr:`calm_run` describe that session for every pair.

    Parameters
    ----------
    n_strategies : int
        Number of strategies (columns of every row), in name order.
    window : int
        Correlation window in sessions (``correlation.window``), >= 2.
    threshold : float
        Breach threshold (``correlation.threshold``): a pair breaches when ``corr > threshold``
        (strict) and is calm when ``corr <= threshold``.

    Attributes
    ----------
    n : int
        Number of strategies.
    window : int
        Correlation window in sessions.
    threshold : float
        Breach threshold, in (-1, 1).
    corr : numpy.ndarray of float64, shape (n_pairs,)
        Pearson correlation of each pair over the last ``window`` sessions; NaN unless both
        windows are full, have no missing value and are not all-equal.
    breach_run : numpy.ndarray of int64, shape (n_pairs,)
        Consecutive sessions with ``corr > threshold``, >= 0 (a NaN resets it to 0).
    calm_run : numpy.ndarray of int64, shape (n_pairs,)
        Consecutive sessions with ``corr <= threshold``, >= 0 (a NaN resets it to 0).

    Raises
    ------
    ValueError
        ``window < 2``.
    """

    def __init__(self, n_strategies: int, *, window: int, threshold: float) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        self.n = n_strategies
        self.window = window
        self.threshold = float(threshold)
        n_pairs = n_strategies * (n_strategies - 1) // 2
        self._ring = np.full((window, n_strategies), np.nan)
        # Missing values among the rows received that are still in the window; a ring that is
        # not yet full is undefined through its row count instead (``filled < window``).
        self._nan_count = np.zeros(n_strategies, dtype=np.int64)
        self._eq_run = np.zeros(n_strategies, dtype=np.int64)
        self._centre = np.zeros(n_strategies)
        self._s1 = np.zeros(n_strategies)
        self._s2 = np.zeros((n_strategies, n_strategies))
        self._mag = np.zeros(n_strategies)
        self._state = np.zeros(3, dtype=np.int64)
        self.corr = np.full(n_pairs, np.nan)
        self.breach_run = np.zeros(n_pairs, dtype=np.int64)
        self.calm_run = np.zeros(n_pairs, dtype=np.int64)

    @property
    def sessions_seen(self) -> int:
        """Number of sessions stepped so far."""
        return int(self._state[1])

    def step(self, row: FloatArray) -> None:
        """Advance by one session and update :attr:`corr` and the run counters.

        Parameters
        ----------
        row : numpy.ndarray of float64, shape (n,)
            The session's daily simple returns, NaN where missing or not existing yet.

        Raises
        ------
        ValueError
            ``row`` does not have shape ``(n,)``.
        """
        x = np.ascontiguousarray(row, dtype=np.float64)
        if x.shape != (self.n,):
            raise ValueError(f"expected a row of {self.n} returns, got shape {x.shape}")
        _corr_step(
            x,
            self._ring,
            self._state,
            self._nan_count,
            self._eq_run,
            self._centre,
            self._s1,
            self._s2,
            self._mag,
            self.threshold,
            self.corr,
            self.breach_run,
            self.calm_run,
        )

    def flagged(self, persistence: int) -> npt.NDArray[np.bool_]:
        """Return SPEC §3's ``flagged`` per pair: ``breach_run >= persistence``."""
        return self.breach_run >= persistence


@njit
def _corr_batch(values: FloatArray, window: int, out: FloatArray) -> None:
    T, n = values.shape
    ring = np.full((window, n), np.nan)
    state = np.zeros(3, dtype=np.int64)
    nan_count = np.zeros(n, dtype=np.int64)
    eq_run = np.zeros(n, dtype=np.int64)
    centre = np.zeros(n)
    s1 = np.zeros(n)
    s2 = np.zeros((n, n))
    mag = np.zeros(n)
    breach = np.zeros(out.shape[1], dtype=np.int64)
    calm = np.zeros(out.shape[1], dtype=np.int64)
    corr = np.empty(out.shape[1])
    for t in range(T):
        _corr_step(
            values[t], ring, state, nan_count, eq_run, centre, s1, s2, mag, 0.0, corr, breach, calm
        )
        out[t, :] = corr


def rolling_corr_all_pairs(values: FloatArray, window: int) -> FloatArray:
    """Compute the rolling correlations of every pair over a whole ``(T, n)`` matrix.

    The same kernel as :class:`PairCorrelationStream`, run once over the history (for oracles
    and benchmarks: pandas' ``rolling(window).corr()`` is the reference).

    Parameters
    ----------
    values : numpy.ndarray of float64, shape (T, n)
        Returns per session and strategy, NaN where missing.
    window : int
        Window length in sessions, >= 2.

    Returns
    -------
    numpy.ndarray of float64, shape (T, n (n - 1) / 2)
        Correlation per session and pair (pairs in :func:`pair_index` order), NaN where
        undefined.
    """
    x = np.ascontiguousarray(values, dtype=np.float64)
    T, n = x.shape
    out = np.empty((T, n * (n - 1) // 2))
    _corr_batch(x, int(window), out)
    return out
