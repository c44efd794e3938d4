"""Rolling statistics against pandas as the oracle (SPEC §2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.stats import (
    PairCorrelationStream,
    pair_index,
    rolling_corr_all_pairs,
    window_vol_sharpe,
)


def _all_equal(frame: pd.DataFrame, window: int) -> np.ndarray:
    def equal(w: np.ndarray) -> float:
        return float(np.all(w == w[0]))

    return frame.rolling(window).apply(equal, raw=True).to_numpy() == 1.0


def _panel(seed: int, T: int = 400, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0004, 0.01, (T, n))
    x[:, 1] = 0.8 * x[:, 0] + rng.normal(0, 0.004, T)  # a correlated pair
    x[:40, 2] = np.nan  # starts late
    x[150:153, 3] = np.nan  # missing days
    x[200:320, 4] = 0.002  # a constant stretch longer than any window
    return x


def _stream_stats(x: np.ndarray, vol_w: int, sharpe_w: int) -> tuple[np.ndarray, np.ndarray]:
    size = max(vol_w, sharpe_w)
    ring = np.full((size, x.shape[1]), np.nan)
    vols, sharpes = [], []
    for t, row in enumerate(x):
        pos = t % size
        ring[pos] = row
        v, s = window_vol_sharpe(
            ring, pos, t + 1, vol_window=vol_w, sharpe_window=sharpe_w, annualization=252
        )
        vols.append(v)
        sharpes.append(s)
    return np.array(vols), np.array(sharpes)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vol_and_sharpe_equal_pandas(seed: int) -> None:
    x = _panel(seed)
    vol, sharpe = _stream_stats(x, 60, 90)
    frame = pd.DataFrame(x)
    ref_vol = frame.rolling(60, min_periods=60).std(ddof=1).to_numpy() * np.sqrt(252)
    r90 = frame.rolling(90, min_periods=90)
    ref_sharpe = (r90.mean() / r90.std(ddof=1)).to_numpy() * np.sqrt(252)
    eq60, eq90 = _all_equal(frame, 60), _all_equal(frame, 90)
    ref_vol = np.where(eq60, 0.0, ref_vol)  # SPEC: an all-equal window has vol 0 ...
    ref_sharpe = np.where(eq90, np.nan, ref_sharpe)  # ... and an undefined Sharpe
    np.testing.assert_array_equal(np.isnan(vol), np.isnan(ref_vol))
    np.testing.assert_allclose(vol, ref_vol, rtol=1e-9, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(np.isnan(sharpe), np.isnan(ref_sharpe))
    np.testing.assert_allclose(sharpe, ref_sharpe, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert eq60.any()
    assert np.all(vol[eq60] == 0.0)


def test_badly_scaled_windows_are_exact() -> None:
    # pandas' add/remove update loses ~1e-4 relative after a 1e9-sized stretch leaves the
    # window; the two-pass kernel (and the periodically rebuilt correlation sums) must not.
    rng = np.random.default_rng(8)
    x = rng.normal(0.0004, 0.01, (300, 2))
    x[50:120, 1] = x[50:120, 0] * 1e6 + 1e3
    vol, _ = _stream_stats(x, 60, 90)
    for t in range(59, 300):
        exact = np.std(x[t - 59 : t + 1], axis=0, ddof=1) * np.sqrt(252)
        np.testing.assert_allclose(vol[t], exact, rtol=1e-9)
    corr = rolling_corr_all_pairs(x, 90)
    for t in range(89, 300):
        exact = np.corrcoef(x[t - 89 : t + 1].T)[0, 1]
        assert abs(corr[t, 0] - exact) < 1e-9


@pytest.mark.parametrize("seed", [4, 5])
def test_all_pairs_correlation_equals_pandas(seed: int) -> None:
    x = _panel(seed, T=500)
    corr = rolling_corr_all_pairs(x, 90)
    frame = pd.DataFrame(x)
    eq = _all_equal(frame, 90)
    a, b = pair_index(x.shape[1])
    for p, (i, j) in enumerate(zip(a, b, strict=True)):
        ref = frame[i].rolling(90, min_periods=90).corr(frame[j]).to_numpy().copy()
        ref[eq[:, i] | eq[:, j]] = np.nan
        np.testing.assert_array_equal(np.isnan(corr[:, p]), np.isnan(ref), err_msg=f"pair {p}")
        np.testing.assert_allclose(corr[:, p], ref, rtol=0, atol=1e-9, equal_nan=True)


def test_constant_window_with_float_noise_is_not_all_equal() -> None:
    # A window that is constant up to one ulp is not "all equal": its correlation is defined.
    x = np.random.default_rng(9).normal(0, 0.01, (120, 2))
    x[:, 1] = 0.1
    x[100, 1] = np.nextafter(0.1, 1.0)
    corr = rolling_corr_all_pairs(x, 90)
    assert np.isnan(corr[99, 0])  # 90 equal values
    assert not np.isnan(corr[100, 0])


def _pandas_corr(x: np.ndarray, window: int) -> np.ndarray:
    """Every pair's rolling correlation by pandas, NaN where a window is all equal (SPEC §2)."""
    frame = pd.DataFrame(x)
    eq = _all_equal(frame, window)
    a, b = pair_index(x.shape[1])
    out = np.empty((x.shape[0], len(a)))
    for p, (i, j) in enumerate(zip(a, b, strict=True)):
        ref = frame[i].rolling(window, min_periods=window).corr(frame[j]).to_numpy().copy()
        ref[eq[:, i] | eq[:, j]] = np.nan
        out[:, p] = ref
    return out


def test_stream_counters_follow_the_spec() -> None:
    """The stream's correlations equal pandas', and its counters follow SPEC §3 on them."""
    x = _panel(6, T=450)
    stream = PairCorrelationStream(x.shape[1], window=90, threshold=0.7)
    oracle = _pandas_corr(x, 90)
    breach = np.zeros(oracle.shape[1], dtype=int)
    calm = np.zeros(oracle.shape[1], dtype=int)
    for row, c in zip(x, oracle, strict=True):
        stream.step(row)
        np.testing.assert_array_equal(np.isnan(stream.corr), np.isnan(c))
        both = ~np.isnan(c)
        np.testing.assert_allclose(stream.corr[both], c[both], rtol=0, atol=1e-9)
        # Counters from the stream's own values: where pandas and the stream straddle the
        # threshold within 1e-9 the counter would be ambiguous; no such case occurs here.
        assert not np.any(both & (np.abs(c - 0.7) < 1e-9))
        breach = np.where(np.isnan(c), 0, np.where(c > 0.7, breach + 1, 0))
        calm = np.where(np.isnan(c), 0, np.where(c <= 0.7, calm + 1, 0))
        np.testing.assert_array_equal(stream.breach_run, breach)
        np.testing.assert_array_equal(stream.calm_run, calm)
    assert breach.max() > 30  # the correlated pair was flagged
    assert stream.flagged(30).any()


def test_stream_state_does_not_grow_with_sessions() -> None:
    stream = PairCorrelationStream(50, window=90, threshold=0.7)
    arrays = [v for v in vars(stream).values() if isinstance(v, np.ndarray)]
    before = sum(a.nbytes for a in arrays)
    rng = np.random.default_rng(0)
    for _ in range(300):
        stream.step(rng.normal(0, 0.01, 50))
    after = sum(v.nbytes for v in vars(stream).values() if isinstance(v, np.ndarray))
    assert after == before
    assert before < 90 * 50 * 8 + 50 * 50 * 8 + 3 * 1225 * 8 + 10_000


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=2, max_value=5),
    st.integers(min_value=3, max_value=12),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_corr_matches_pandas_on_random_shapes(n: int, window: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    T = window * 4
    x = rng.normal(0, 1, (T, n))
    x[rng.random((T, n)) < 0.05] = np.nan
    x[rng.random((T, n)) < 0.3] = 0.5  # ties and constant runs
    corr = rolling_corr_all_pairs(x, window)
    oracle = _pandas_corr(x, window)
    for p in range(corr.shape[1]):
        ref = oracle[:, p]
        # pandas leaves noise where a variance is ~0 but the values are not all equal
        both = ~np.isnan(ref) & ~np.isnan(corr[:, p])
        np.testing.assert_allclose(corr[both, p], ref[both], rtol=0, atol=1e-9)
        assert np.array_equal(np.isnan(corr[:, p]) & ~np.isnan(ref), np.zeros(T, dtype=bool))
