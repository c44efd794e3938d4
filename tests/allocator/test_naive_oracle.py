"""The engine against the benchmark's naive baseline, an independent plain-pandas rewrite of
SPEC §3–§6 that recomputes every statistic from the history: the same decisions, every day."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from allocator.config import AllocatorConfig, CorrelationConfig, SizingConfig
from allocator.replay import replay

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_rules import xnys_panel
from naive_replay import naive_replay


@pytest.mark.parametrize("seed", [7, 8])
def test_engine_agrees_with_the_naive_rewrite(seed: int) -> None:
    config = AllocatorConfig(
        sizing=SizingConfig(rebalance_every=20),
        correlation=CorrelationConfig(persistence=10, threshold=0.5),
    )
    panel = xnys_panel(5, "2015-01-02", periods=420, seed=seed)
    panel.values[200:205, 1] = -0.04  # a -18% week: half
    panel.values[300:308, 2] = -0.05  # a -34% stretch: halted
    panel.values[309:400, 2] = np.abs(panel.values[309:400, 2]) + 0.002  # recovery: released
    fast = replay(panel, config)
    slow = naive_replay(panel, config)
    kinds = {e.kind for e in fast.events}
    assert {"bench", "readmit", "breaker", "rebalance"} <= kinds  # every rule was exercised
    np.testing.assert_array_equal(slow["benched"].astype(bool), fast.benched)
    np.testing.assert_array_equal(slow["breaker_state"], fast.breaker_state)
    for key in ("base_weight", "final_weight", "capital"):
        np.testing.assert_allclose(slow[key], getattr(fast, key), rtol=1e-9, atol=1e-9)
