"""The breaker's state machine, transition by transition (SPEC §5)."""

from __future__ import annotations

import math

import pytest

from allocator.breaker import multiplier, transition
from allocator.config import BreakerConfig
from allocator.states import BreakerState

C = BreakerConfig()
N, H, X = BreakerState.NORMAL, BreakerState.HALF, BreakerState.HALTED


@pytest.mark.parametrize(
    ("state", "mtd", "sharpe", "new"),
    [
        (N, 0.02, 1.0, N),
        (N, -0.15, 1.0, H),  # the threshold itself is "at or below"
        (N, -0.1499999, 1.0, N),
        (N, -0.25, 1.0, X),
        (N, -0.30, math.nan, X),
        (H, -0.10, -1.0, N),  # half is not latched
        (H, -0.26, 0.0, X),
        (X, 0.05, 0.5, X),  # Sharpe must be strictly above 0.5
        (X, 0.05, math.nan, X),
        (X, 0.05, 0.51, N),  # released; the MTD rule decides in the same session
        (X, -0.20, 0.9, H),
        (X, -0.30, 2.0, X),
        (N, math.nan, 5.0, N),  # NaN MTD: unchanged
        (H, math.nan, 5.0, H),
        (X, math.nan, 5.0, X),
    ],
)
def test_transitions(state: BreakerState, mtd: float, sharpe: float, new: BreakerState) -> None:
    d = transition(state, mtd, sharpe, C)
    assert d.new is new
    assert d.changed is (state is not new)
    assert d.event == (None if state is new else f"{state.label}->{new.label}")


def test_multipliers() -> None:
    assert [multiplier(s, C) for s in (N, H, X)] == [1.0, 0.5, 0.0]
    assert multiplier(H, BreakerConfig(half_multiplier=0.25)) == 0.25


def test_vectorised_transition_equals_the_scalar_machine() -> None:
    import numpy as np

    from allocator.breaker import transition_all

    rng = np.random.default_rng(0)
    n = 5000
    states = rng.integers(0, 3, n).astype(np.int8)
    mtd = rng.choice([-0.3, -0.25, -0.2, -0.15, -0.1, 0.0, 0.1, np.nan], n)
    sharpe = rng.choice([-1.0, 0.5, 0.50001, 2.0, np.nan], n)
    got = transition_all(states, mtd, sharpe, C)
    want = [
        transition(BreakerState(int(s)), m, h, C).new
        for s, m, h in zip(states, mtd, sharpe, strict=True)
    ]
    assert got.tolist() == [int(w) for w in want]
