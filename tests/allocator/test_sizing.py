"""Risk-parity weights: golden numbers from independent sources, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from allocator.errors import SolverError
from allocator.sizing import SizingSchedule, erc_weights, inverse_vol_weights, risk_contributions


def test_seed_vols_give_the_spec_dollar_amounts() -> None:
    # SPEC §10: the article's six vols with $98K; its table is wrong, the formula is right.
    names = ["Pairs", "Cash-and-carry", "Earnings", "Trend", "News", "Flow"]
    vols = np.array([0.06, 0.04, 0.12, 0.16, 0.14, 0.14])
    w = inverse_vol_weights(vols, np.ones(6, dtype=bool))
    dollars = dict(zip(names, np.round(w * 98_000), strict=True))
    assert dollars == {
        "Pairs": 23_156,
        "Cash-and-carry": 34_734,
        "Earnings": 11_578,
        "Trend": 8_684,
        "News": 9_924,
        "Flow": 9_924,
    }
    np.testing.assert_allclose(np.round(w * 100, 1), [23.6, 35.4, 11.8, 8.9, 10.1, 10.1])


def test_inverse_vol_ignores_the_ineligible() -> None:
    w = inverse_vol_weights(np.array([0.1, np.nan, 0.2, 0.0]), np.array([1, 0, 1, 0], bool))
    np.testing.assert_allclose(w, [2 / 3, 0, 1 / 3, 0])
    assert not inverse_vol_weights(np.array([0.1]), np.array([False])).any()


# LEAN Tests/Algorithm/Framework/Portfolio/RiskParityPortfolioOptimizerTests.cs: covariance,
# risk budget and the unnormalised Newton solution the C# test expects (rounded to 6 places).
LEAN_CASES = [
    ([[0.25, -0.2], [-0.2, 0.25]], [0.5, 0.5], [3.162278, 3.162278]),
    ([[0.01, 0.0], [0.0, 0.04]], [0.5, 0.5], [7.071068, 3.535534]),
    ([[1.0, 0.45], [0.45, 0.25]], [0.5, 0.5], [0.512989, 1.025978]),
    ([[0.25, 0.05], [0.05, 0.04]], [0.5, 0.5], [1.154701, 2.886751]),
    ([[0.25, -0.2], [-0.2, 0.25]], [0.25, 0.75], [2.965685, 3.285618]),
    ([[0.01, 0.0], [0.0, 0.04]], [0.25, 0.75], [5.0, 4.330127]),
    ([[1.0, 0.45], [0.45, 0.25]], [0.25, 0.75], [0.264749, 1.510089]),
    ([[0.25, 0.05], [0.05, 0.04]], [0.25, 0.75], [0.681774, 3.924933]),
]


@pytest.mark.parametrize(("cov", "budget", "lean"), LEAN_CASES)
def test_lean_risk_parity_vectors(
    cov: list[list[float]], budget: list[float], lean: list[float]
) -> None:
    w = erc_weights(np.array(cov), np.array(budget))
    expected = np.array(lean) / sum(lean)
    np.testing.assert_allclose(w, expected, atol=2e-6)


def test_maillard_roncalli_teiletche_closed_forms() -> None:
    # MRT (2010) §2: with one common correlation the ERC weights are inverse-vol, whatever rho;
    # with two assets likewise. Their 4-asset example (vols 10/20/30/40%, the paper's
    # correlation matrix) must give equal risk contributions.
    vols = np.array([0.10, 0.20, 0.30, 0.40])
    for rho in (-0.2, 0.0, 0.5, 0.9):
        corr = np.full((4, 4), rho)
        np.fill_diagonal(corr, 1.0)
        w = erc_weights(corr * np.outer(vols, vols))
        np.testing.assert_allclose(w, (1 / vols) / (1 / vols).sum(), rtol=1e-10)
    corr = np.array(
        [[1, 0.8, 0, 0], [0.8, 1, -0.5, 0], [0, -0.5, 1, 0.5], [0, 0, 0.5, 1]], dtype=float
    )
    cov = corr * np.outer(vols, vols)
    w = erc_weights(cov)
    rc = risk_contributions(w, cov)
    np.testing.assert_allclose(rc, 0.25, rtol=1e-8)
    # The ERC volatility lies between minimum variance and 1/n (MRT 2010, Proposition 1).
    ones = np.ones(4)
    inv = np.linalg.solve(cov, ones)
    mv = inv / inv.sum()
    vol = lambda x: float(np.sqrt(x @ cov @ x))  # noqa: E731
    assert vol(mv) <= vol(w) <= vol(ones / 4)


def test_skfolio_cross_check() -> None:
    from skfolio.optimization import InverseVolatility, RiskBudgeting

    rng = np.random.default_rng(3)
    a = rng.normal(0, 0.01, (250, 5))
    returns = a @ np.triu(rng.uniform(0.2, 1.0, (5, 5)))
    cov = np.cov(returns, rowvar=False, ddof=1)
    sk_inv = InverseVolatility().fit(returns).weights_
    ours_inv = inverse_vol_weights(returns.std(axis=0, ddof=1), np.ones(5, dtype=bool))
    np.testing.assert_allclose(ours_inv, sk_inv, rtol=1e-6)
    sk_erc = RiskBudgeting().fit(returns).weights_
    np.testing.assert_allclose(erc_weights(cov), sk_erc, atol=1e-4)  # skfolio solves to ~1e-5


def test_erc_refuses_a_bad_matrix() -> None:
    with pytest.raises(SolverError, match="zero or negative variance"):
        erc_weights(np.array([[0.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(SolverError, match="not symmetric"):
        erc_weights(np.array([[1.0, 0.2], [0.3, 1.0]]))
    with pytest.raises(SolverError, match="non-finite"):
        erc_weights(np.array([[np.nan]]))


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 12), elements=st.floats(1e-4, 5.0)),
    st.data(),
)
def test_inverse_vol_properties(vols: np.ndarray, data: st.DataObject) -> None:
    eligible = np.array(data.draw(st.lists(st.booleans(), min_size=vols.size, max_size=vols.size)))
    w = inverse_vol_weights(vols, eligible)
    assert np.all(w[~eligible] == 0)
    assert np.all(w >= 0)
    if eligible.any():
        assert w.sum() == pytest.approx(1.0, abs=1e-12)
        dollar_vol = w[eligible] * vols[eligible]  # equal dollar volatility
        np.testing.assert_allclose(dollar_vol, dollar_vol[0], rtol=1e-10)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 10), st.integers(0, 2**32 - 1))
def test_erc_equal_risk_contributions(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    factors = rng.normal(0, 1, (n, n)) * rng.uniform(0.1, 3.0, n)
    cov = factors @ factors.T / n + np.diag(rng.uniform(1e-4, 1e-2, n))
    w = erc_weights(cov)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(w > 0)
    rc = w * (cov @ w)
    assert (rc.max() - rc.min()) / rc.mean() <= 1e-8


def test_schedule_anchor_fixed_and_events_do_not_move_it() -> None:
    s = SizingSchedule(every=3)
    seen = [s.reason(t, any_eligible=t >= 2, bench_changed=t in (4, 8)) for t in range(0, 12)]
    assert seen == [
        None,
        None,
        "scheduled",  # first session with an eligible strategy
        None,
        "event",
        "scheduled",  # 2 + 3: the event at 4 did not move the schedule
        None,
        None,
        "scheduled+event",
        None,
        None,
        "scheduled",
    ]
