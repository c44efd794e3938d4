"""Bench and re-admission (SPEC §3): ordering, tie-breaks, who holds whom on the bench."""

from __future__ import annotations

import math

import numpy as np

from allocator.correlation import PairTable, bench_step, readmit_step

NAMES = ("a", "b", "c", "d")
PAIRS = PairTable.build(4)


def _pairs(values: dict[tuple[str, str], float], default: float = 0.0) -> np.ndarray:
    out = np.full(PAIRS.a.size, default)
    for (x, y), v in values.items():
        out[PAIRS.lookup[NAMES.index(x), NAMES.index(y)]] = v
    return out


def test_lower_sharpe_is_benched_and_nan_is_lowest() -> None:
    benched = np.zeros(4, dtype=bool)
    flagged = _pairs({("a", "b"): 1}).astype(bool)
    corr = _pairs({("a", "b"): 0.9})
    events = bench_step(benched, flagged, corr, np.array([1.0, 0.5, 0, 0]), PAIRS, 0.7, 30, NAMES)
    assert [(e.kind, NAMES[e.index]) for e in events] == [("bench", "b")]
    benched[:] = False
    bench_step(benched, flagged, corr, np.array([math.nan, 0.5, 0, 0]), PAIRS, 0.7, 30, NAMES)
    assert benched.tolist() == [True, False, False, False]


def test_sharpe_tie_benches_the_later_name() -> None:
    benched = np.zeros(4, dtype=bool)
    flagged = _pairs({("b", "c"): 1}).astype(bool)
    bench_step(benched, flagged, _pairs({("b", "c"): 0.8}), np.ones(4), PAIRS, 0.7, 30, NAMES)
    assert benched.tolist() == [False, False, True, False]
    benched[:] = False
    both_nan = np.full(4, math.nan)
    bench_step(benched, flagged, _pairs({("b", "c"): 0.8}), both_nan, PAIRS, 0.7, 30, NAMES)
    assert benched.tolist() == [False, False, True, False]


def test_pairs_walked_by_corr_then_names_and_skipped_once_a_member_is_benched() -> None:
    # (a,b) 0.95 and (b,c) 0.95 tie on corr: (a,b) first by name. b has the lowest Sharpe and
    # goes; then (b,c) is skipped (b already benched); (c,d) 0.80 benches d.
    benched = np.zeros(4, dtype=bool)
    corr = _pairs({("a", "b"): 0.95, ("b", "c"): 0.95, ("c", "d"): 0.80})
    flagged = corr > 0.7
    sharpe = np.array([2.0, 0.1, 1.5, 1.0])
    events = bench_step(benched, flagged, corr, sharpe, PAIRS, 0.7, 30, NAMES)
    assert [NAMES[e.index] for e in events] == ["b", "d"]
    assert benched.tolist() == [False, True, False, True]
    # Had (c,d) been walked before (b,c), c would have been benched through (b,c) first.
    benched[:] = False
    corr = _pairs({("a", "b"): 0.90, ("b", "c"): 0.95, ("a", "c"): 0.85})
    events = bench_step(
        benched, corr > 0.7, corr, np.array([3.0, 2.0, 1.0, 0]), PAIRS, 0.7, 30, NAMES
    )
    assert [NAMES[e.index] for e in events] == ["c", "b"]


def test_pairs_with_a_benched_member_do_not_bench() -> None:
    benched = np.array([False, True, False, False])
    corr = _pairs({("a", "b"): 0.99})
    assert bench_step(benched, corr > 0.7, corr, np.zeros(4), PAIRS, 0.7, 30, NAMES) == []


def test_readmission_needs_calm_against_every_mature_active_strategy() -> None:
    benched = np.array([False, True, False, False])
    mature = np.array([True, True, True, False])  # d is too young to hold anyone
    calm = _pairs({("a", "b"): 30, ("b", "c"): 29, ("b", "d"): 0})
    assert readmit_step(benched, mature, calm, PAIRS, 30, NAMES) == []
    calm = _pairs({("a", "b"): 30, ("b", "c"): 31, ("b", "d"): 0})
    events = readmit_step(benched, mature, calm, PAIRS, 30, NAMES)
    assert [(e.kind, NAMES[e.index]) for e in events] == [("readmit", "b")]
    assert not benched.any()


def test_readmitted_strategy_counts_as_active_for_later_names() -> None:
    # b and c benched. b comes back (calm with a); c then needs calm with a AND b.
    benched = np.array([False, True, True, True])
    mature = np.ones(4, dtype=bool)
    calm = _pairs({("a", "b"): 40, ("a", "c"): 40, ("b", "c"): 5, ("a", "d"): 40, ("b", "d"): 40})
    events = readmit_step(benched, mature, calm, PAIRS, 30, NAMES)
    assert [NAMES[e.index] for e in events] == ["b", "d"]
    assert benched.tolist() == [False, False, True, False]


def test_no_judge_means_readmission() -> None:
    benched = np.array([True, True, False, False])
    mature = np.array([True, True, False, False])
    events = readmit_step(benched, mature, np.zeros(PAIRS.a.size, dtype=np.int64), PAIRS, 30, NAMES)
    # a has no active mature judge (b benched, c/d young) -> back; b is then judged by a.
    assert [NAMES[e.index] for e in events] == ["a"]
    assert benched.tolist() == [False, True, False, False]
