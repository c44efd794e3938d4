"""The replay engine: scenarios that drive each rule through its transitions, and properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.config import (
    AllocationConfig,
    AllocatorConfig,
    BreakerConfig,
    CorrelationConfig,
    SizingConfig,
)
from allocator.data import ReturnsPanel
from allocator.replay import ReplayResult, replay
from allocator.states import BreakerState

SMALL = AllocatorConfig(
    sizing=SizingConfig(vol_window=5, rebalance_every=10),
    correlation=CorrelationConfig(window=6, threshold=0.7, persistence=3),
    breaker=BreakerConfig(sharpe_window=6),
)


def make_panel(columns: dict[str, np.ndarray], start: str = "2024-01-02") -> ReturnsPanel:
    names = tuple(sorted(columns))
    values = np.column_stack([np.asarray(columns[k], dtype=float) for k in names])
    sessions = np.asarray(pd.bdate_range(start, periods=len(values)).values.astype("datetime64[D]"))
    first = np.array(
        [int(np.flatnonzero(~np.isnan(values[:, j]))[0]) for j in range(len(names))], dtype=np.intp
    )
    return ReturnsPanel(sessions=sessions, strategies=names, values=values, first=first)


def events(result: ReplayResult, kind: str) -> list[tuple[int, str, str]]:
    index = {d: i for i, d in enumerate(result.sessions)}
    return [(index[e.date], e.strategy, e.detail) for e in result.events if e.kind == kind]


def test_warm_up_first_recompute_and_fixed_schedule() -> None:
    rng = np.random.default_rng(1)
    late = rng.normal(0, 0.01, 40)
    late[:12] = np.nan  # "late" starts at session 12
    panel = make_panel({"early": rng.normal(0, 0.01, 40), "late": late})
    r = replay(panel, SMALL)
    # vol_window 5: "early" is eligible from session 4, "late" from 16.
    assert events(r, "rebalance")[:4] == [
        (4, "", "scheduled"),
        (14, "", "scheduled"),
        (24, "", "scheduled"),
        (34, "", "scheduled"),
    ]
    assert np.all(r.base_weight[:4] == 0)
    np.testing.assert_array_equal(r.base_weight[4:14, 1], 0.0)
    assert np.all(r.base_weight[4:14, 0] == 1.0)
    # "late" joins at the next recompute after its warm-up (24), not at 16.
    assert r.base_weight[23, 1] == 0.0
    assert r.base_weight[24, 1] > 0.0
    assert np.isnan(r.vol[15, 1])
    assert not np.isnan(r.vol[16, 1])
    # Before it exists a strategy has no statistics at all and sits at normal / not benched.
    assert np.isnan(r.mtd[:12, 1]).all()
    assert (r.breaker_state[:12, 1] == 0).all()
    assert (r.multiplier[:12, 1] == 1.0).all()


def test_held_weights_survive_a_vol_gap_until_the_next_recompute() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0, 0.01, 30)
    b = rng.normal(0, 0.02, 30)
    b[16] = np.nan  # a missing day: vol undefined for 5 sessions, weight held
    r = replay(make_panel({"a": a, "b": b}), SMALL)
    assert np.isnan(r.vol[16:21, 1]).all()
    np.testing.assert_array_equal(r.base_weight[14:24], np.tile(r.base_weight[14], (10, 1)))
    # At the scheduled recompute of session 24 b is eligible again.
    assert r.base_weight[24, 1] > 0


def test_zero_variance_is_not_eligible() -> None:
    rng = np.random.default_rng(3)
    flat = np.full(30, 0.001)
    r = replay(make_panel({"flat": flat, "live": rng.normal(0, 0.01, 30)}), SMALL)
    assert (r.vol[4:, 0] == 0.0).all()
    assert np.isnan(r.sharpe[5:, 0]).all()
    assert (r.base_weight[:, 0] == 0.0).all()
    assert r.base_weight[4, 1] == 1.0


def _corr_oracle(x: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
    return pd.Series(x).rolling(window).corr(pd.Series(y)).to_numpy()


def test_bench_and_readmission_follow_the_pandas_correlations() -> None:
    rng = np.random.default_rng(4)
    T = 80
    base = rng.normal(0, 0.01, T)
    twin = np.where(np.arange(T) < 40, base + rng.normal(0, 0.001, T), rng.normal(0, 0.01, T))
    strong = base * 1.0 + 0.004  # higher Sharpe than its twin
    other = rng.normal(0, 0.01, T)
    r = replay(make_panel({"strong": strong, "twin": twin, "other": other}), SMALL)
    corr = _corr_oracle(strong, twin, 6)
    above = np.nan_to_num(corr, nan=0.0) > 0.7
    run = np.zeros(T, dtype=int)
    for t in range(T):
        run[t] = run[t - 1] + 1 if above[t] and t else int(above[t])
    expected_bench = int(np.flatnonzero(run >= 3)[0])
    benches = events(r, "bench")
    assert benches[0][:2] == (expected_bench, "twin")
    j_twin = r.strategies.index("twin")
    assert r.benched[expected_bench, j_twin]
    assert not r.benched[expected_bench - 1, j_twin]
    # Benching is an event-driven recompute that does not move the schedule.
    assert (expected_bench, "", "event") in events(r, "rebalance") or (
        expected_bench,
        "",
        "scheduled+event",
    ) in events(r, "rebalance")
    assert r.base_weight[expected_bench, j_twin] == 0.0
    assert r.final_weight[expected_bench:, j_twin][r.benched[expected_bench:, j_twin]].max() == 0.0
    # Re-admission: calm (corr <= 0.7, defined) for 3 sessions against every mature active one.
    readmits = events(r, "readmit")
    assert readmits, "twin should come back after the correlation normalises"
    t_back = readmits[0][0]
    for judge in ("strong", "other"):
        c = _corr_oracle(twin, r_col(r, judge, strong, other), 6)
        assert np.all(c[t_back - 2 : t_back + 1] <= 0.7)
    assert not r.benched[t_back, j_twin]
    # The counters keep running while it is benched: it could not come back before.
    c_strong = _corr_oracle(twin, strong, 6)
    c_other = _corr_oracle(twin, other, 6)
    for t in range(expected_bench + 1, t_back):
        calm_s = np.all(c_strong[t - 2 : t + 1] <= 0.7)
        calm_o = np.all(c_other[t - 2 : t + 1] <= 0.7)
        assert not (calm_s and calm_o), f"readmission was due at {t}"


def r_col(r: ReplayResult, name: str, strong: np.ndarray, other: np.ndarray) -> np.ndarray:
    return strong if name == "strong" else other


def _month_panel(returns: list[float], start: str) -> ReturnsPanel:
    return make_panel({"s": np.array(returns)}, start=start)


def test_half_clears_at_month_start() -> None:
    # 2024-01-25 .. : a -16% month end, then February starts: MTD resets and half clears.
    rets = [0.0, -0.10, -0.07, 0.001, 0.001, 0.001, 0.001, 0.001]
    panel = _month_panel(rets, "2024-01-25")
    r = replay(panel, SMALL)
    dates = [str(d) for d in r.sessions]
    jan_last = dates.index("2024-01-31")
    assert r.breaker_state[jan_last - 1, 0] == BreakerState.HALF  # 2024-01-30: -16.3%
    assert r.breaker_state[jan_last + 1, 0] == BreakerState.NORMAL  # 2024-02-01 new month
    assert [e[2] for e in events(r, "breaker")] == ["normal->half", "half->normal"]


def test_halted_latches_across_months_and_is_released_by_sharpe() -> None:
    # A -30% January halts; February's MTD is positive but the 6-session Sharpe stays low until
    # enough positive days accumulate; then the release happens with the MTD rule same session.
    jan = [0.01, -0.15, -0.10, -0.08, 0.001]  # 2024-01-25..31
    feb = [0.002, -0.004, 0.001, -0.003, 0.004, 0.01, 0.012, 0.011, 0.013, 0.012, 0.011, 0.012]
    r = replay(_month_panel(jan + feb, "2024-01-25"), SMALL)
    state = r.breaker_state[:, 0]
    t_halt = int(np.flatnonzero(state == BreakerState.HALTED)[0])
    sharpe = pd.Series(jan + feb).rolling(6).mean() / pd.Series(jan + feb).rolling(6).std()
    sharpe_annual = sharpe.to_numpy() * np.sqrt(252)
    releases = [t for t in range(t_halt + 1, len(state)) if sharpe_annual[t] > 0.5]
    t_release = releases[0]
    assert (state[t_halt:t_release] == BreakerState.HALTED).all()  # latched into February
    assert str(r.sessions[t_halt])[:7] == "2024-01"
    assert str(r.sessions[t_release])[:7] == "2024-02"
    assert state[t_release] == BreakerState.NORMAL
    assert (r.final_weight[t_halt:t_release, 0] == 0).all()
    assert events(r, "breaker")[-1][0] == t_release


def test_nan_mtd_keeps_the_state_even_across_a_month_start() -> None:
    rets = [-0.20, np.nan, 0.05, 0.05]  # 2024-01-30, 01-31 (missing), 02-01, 02-02
    r = replay(_month_panel(rets, "2024-01-30"), SMALL)
    assert r.breaker_state[:, 0].tolist() == [1, 1, 0, 0]
    assert np.isnan(r.mtd[1, 0])


def test_capital_and_redistribution() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(0, 0.01, 12)
    a[8:10] = -0.1  # -19% MTD -> half
    panel = make_panel({"a": a, "b": rng.normal(0, 0.01, 12)}, start="2024-03-01")
    keep = replay(panel, SMALL)
    t = 9
    assert keep.breaker_state[t, 0] == BreakerState.HALF
    np.testing.assert_allclose(keep.final_weight[t], keep.base_weight[t] * [0.5, 1.0])
    np.testing.assert_allclose(keep.capital[t], keep.final_weight[t] * 100_000)
    assert keep.final_weight[t].sum() < 1.0  # freed capital stays in cash
    config = AllocatorConfig(
        sizing=SMALL.sizing,
        correlation=SMALL.correlation,
        breaker=SMALL.breaker,
        allocation=AllocationConfig(total_capital=50_000, redistribute_freed_capital=True),
    )
    spread = replay(panel, config)
    assert spread.final_weight[t].sum() == pytest.approx(1.0)
    assert spread.capital[t].sum() == pytest.approx(50_000)


def test_erc_method_runs_on_the_same_schedule() -> None:
    rng = np.random.default_rng(6)
    cols = {k: rng.normal(0, s, 40) for k, s in (("x", 0.01), ("y", 0.02), ("z", 0.03))}
    panel = make_panel(cols)
    config = AllocatorConfig(
        sizing=SizingConfig(method="erc", vol_window=5, rebalance_every=10),
        correlation=CorrelationConfig(window=30, persistence=3),
        breaker=SMALL.breaker,
    )
    r = replay(panel, config)
    t = 14
    window = panel.values[t - 4 : t + 1]
    cov = np.cov(window, rowvar=False)
    w = r.base_weight[t]
    rc = w * (cov @ w)
    assert (rc.max() - rc.min()) / rc.mean() < 1e-8
    assert [e[0] for e in events(r, "rebalance")][:3] == [4, 14, 24]


def _random_history(seed: int, T: int, n: int) -> ReturnsPanel:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.01, T)
    cols = {}
    for j in range(n):
        mix = rng.uniform(0, 1)
        x = mix * common + (1 - mix) * rng.normal(0.0005, 0.01, T)
        x[rng.random(T) < 0.03] = np.nan
        x[rng.random(T) < 0.02] = -0.09
        start = int(rng.integers(0, T // 3))
        x[:start] = np.nan
        x[start] = 0.001
        cols[f"s{j}"] = x
    return make_panel(cols)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31), st.integers(2, 6), st.integers(20, 70))
def test_invariants_and_prefix_consistency(seed: int, n: int, cut: int) -> None:
    panel = _random_history(seed, 90, n)
    full = replay(panel, SMALL)
    # Weights sum to 1 over the eligible after a recompute and are 0 elsewhere; no pair of
    # active strategies stays flagged after the bench step.
    for t in range(len(panel.sessions)):
        base = full.base_weight[t]
        assert np.all(base >= 0)
        assert np.all(base[full.benched[t]] == 0)
        total = base.sum()
        assert total == 0 or abs(total - 1.0) < 1e-12
    part = replay(panel.prefix(cut), SMALL)
    for name in ("vol", "sharpe", "mtd", "base_weight", "final_weight", "capital", "multiplier"):
        np.testing.assert_array_equal(getattr(part, name), getattr(full, name)[:cut], err_msg=name)
    np.testing.assert_array_equal(part.benched, full.benched[:cut])
    np.testing.assert_array_equal(part.breaker_state, full.breaker_state[:cut])
    assert part.events == [e for e in full.events if e.date <= panel.sessions[cut - 1]]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 7))
def test_no_active_pair_stays_flagged(seed: int, n: int) -> None:
    from allocator.replay import AllocatorEngine

    panel = _random_history(seed, 80, n)
    engine = AllocatorEngine(panel.strategies, SMALL)
    for t in range(len(panel.sessions)):
        d = engine.step(panel.sessions[t], panel.values[t])
        flagged = engine.corr_stream.flagged(SMALL.correlation.persistence)
        active = ~d.benched
        assert not np.any(flagged & active[engine.pairs.a] & active[engine.pairs.b])
