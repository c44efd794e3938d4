"""The book a replay makes: book.csv worked by hand, summary.json's keys, step == block replay."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator.book import SUMMARY_KEYS, book_of, book_returns, event_counts, summarize
from allocator.config import (
    AllocatorConfig,
    BreakerConfig,
    CorrelationConfig,
    SizingConfig,
)
from allocator.data import ReturnsPanel
from allocator.replay import AllocatorEngine, Event, decide, replay, statistics

# Three strategies, four XNYS sessions. vol_window = 2 with annualization = 1 makes
# vol = |r_prev - r_now| / sqrt(2), and rebalance_every = 1 recomputes every session; the
# correlation and Sharpe windows (10) never fill, so nothing is benched, and the returns are
# too small for the breaker.
HAND = AllocatorConfig(
    sizing=SizingConfig(vol_window=2, annualization=1, rebalance_every=1),
    correlation=CorrelationConfig(window=10),
    breaker=BreakerConfig(sharpe_window=10),
)
SESSIONS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
RETURNS = {
    "A": [0.01, 0.03, -0.02, 0.01],
    "B": [0.02, 0.00, 0.01, 0.03],
    "C": [0.00, 0.01, 0.02, -0.01],
}


def hand_panel() -> ReturnsPanel:
    values = np.column_stack([RETURNS[k] for k in ("A", "B", "C")])
    return ReturnsPanel(
        sessions=np.array(SESSIONS, dtype="datetime64[D]"),
        strategies=("A", "B", "C"),
        values=values,
        first=np.zeros(3, dtype=np.intp),
    )


def test_book_csv_matches_the_hand_worked_example(tmp_path: Path) -> None:
    """Worked by hand, cash at 0.1% a session (cash_rate 0.001, annualization 1), cost 0.001.

    Weights published at the close (inverse vol, vol ∝ |r_{t-1} - r_t|):
      01-02: one return each, no vol          -> w0 = (0, 0, 0)
      01-03: |Δ| = 0.02, 0.02, 0.01           -> 1/vol ∝ 50, 50, 100     -> w1 = (1/4, 1/4, 1/2)
      01-04: |Δ| = 0.05, 0.01, 0.01           -> 1/vol ∝ 20, 100, 100    -> w2 = (1/11, 5/11, 5/11)
    Book of session t+1 = w_t · r_{t+1} + (1 - Σ w_t) · 0.001 - 0.001 · Σ|w_t - w_{t-1}|:
      01-03: holds w0: 0 invested, all cash   -> 0.001;                      turnover 0
      01-04: holds w1: .25(-.02) + .25(.01) + .5(.02) = 0.0075; turnover |w1 - w0| = 1
             -> 0.0075 - 0.001 · 1 = 0.0065
      01-05: holds w2: (.01 + 5 · .03 + 5 · (-.01)) / 11 = 0.01;
             turnover |1/11 - 1/4| + |5/11 - 1/4| + |5/11 - 1/2| = (7 + 9 + 2) / 44 = 9/22
             -> 0.01 - 0.001 · 9/22 = 0.0095909...
      equity: 1.001, 1.001 · 1.0065 = 1.0075065, 1.0075065 · 1.0095909... = 1.0171692...
    """
    from cli.replay import run_replay

    src = tmp_path / "returns.csv"
    rows = [(d, k, RETURNS[k][i]) for i, d in enumerate(SESSIONS) for k in RETURNS]
    pd.DataFrame(rows, columns=["date", "strategy", "return"]).to_csv(src, index=False)
    cfg_file = tmp_path / "hand.toml"
    cfg_file.write_text(
        "[sizing]\nvol_window = 2\nannualization = 1\nrebalance_every = 1\n"
        "[correlation]\nwindow = 10\n[breaker]\nsharpe_window = 10\n"
    )
    config = AllocatorConfig.from_toml(cfg_file)
    out = tmp_path / "out"
    run_replay(src, out, config, pairs=False, cash_rate=0.001, cost=0.001, report=False)
    with (out / "book.csv").open(newline="") as fh:
        book = list(csv.DictReader(fh))
    assert [r["date"] for r in book] == SESSIONS[1:]
    expected_returns = [0.001, 0.0075 - 0.001, 0.01 - 0.001 * 9 / 22]
    assert [float(r["book_return"]) for r in book] == pytest.approx(expected_returns, abs=1e-15)
    assert [float(r["turnover"]) for r in book] == pytest.approx([0.0, 1.0, 9 / 22], abs=1e-15)
    assert [float(r["invested"]) for r in book] == pytest.approx([0.0, 1.0, 1.0], abs=1e-15)
    assert [float(r["cash"]) for r in book] == pytest.approx([1.0, 0.0, 0.0], abs=1e-15)
    assert [float(r["cost"]) for r in book] == pytest.approx([0.0, 0.001, 0.009 / 22], abs=1e-15)
    equity = [1.001, 1.001 * 1.0065, 1.001 * 1.0065 * (1.01 - 0.009 / 22)]
    assert [float(r["equity"]) for r in book] == pytest.approx(equity, abs=1e-14)
    # The weights the engine published are the hand-worked ones.
    result = replay(hand_panel(), HAND)
    np.testing.assert_allclose(result.final_weight[1], [0.25, 0.25, 0.5], atol=1e-15)
    np.testing.assert_allclose(result.final_weight[2], [1 / 11, 5 / 11, 5 / 11], atol=1e-15)
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == list(SUMMARY_KEYS)
    assert summary["turnover"] == pytest.approx((1.0 + 9 / 22) / 3)  # per year of 1 session
    assert summary["cagr"] == pytest.approx(equity[-1] ** (1 / 3) - 1)
    assert (summary["benches"], summary["readmits"], summary["breaker_trips"]) == (0, 0, 0)


def test_missing_return_of_a_held_strategy_counts_as_zero() -> None:
    w = np.array([[0.5, 0.5], [0.5, 0.5]])
    r = np.array([[0.0, 0.0], [np.nan, 0.02]])
    book, turnover, invested = book_returns(w, r)
    assert book.tolist() == [0.01]
    assert turnover.tolist() == [1.0]
    assert invested.tolist() == [1.0]


@pytest.mark.parametrize(("kw", "word"), [({"cash_rate": -1.0}, "cash"), ({"cost": 2.0}, "cost")])
def test_book_settings_out_of_range_are_refused(kw: dict[str, float], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        book_returns(np.zeros((2, 1)), np.zeros((2, 1)), **kw)


def test_breaker_trips_count_only_moves_to_a_worse_state() -> None:
    day = np.datetime64("2024-01-02")
    events = [
        Event(day, "breaker", "a", "normal->half"),
        Event(day, "breaker", "a", "half->halted"),
        Event(day, "breaker", "a", "halted->normal"),
        Event(day, "breaker", "b", "half->normal"),
        Event(day, "bench", "b", ""),
        Event(day, "readmit", "b", ""),
    ]
    assert event_counts(events) == {"benches": 1, "readmits": 1, "breaker_trips": 2}


def _busy_panel(seed: int, T: int = 420, n: int = 5) -> ReturnsPanel:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.01, T)
    mix = rng.uniform(0.0, 0.95, n)
    values = mix * common[:, None] + (1 - mix) * rng.normal(0.0003, 0.01, (T, n))
    values[rng.random((T, n)) < 0.01] = -0.07
    values[rng.random((T, n)) < 0.01] = np.nan
    values[: rng.integers(0, 60), 0] = np.nan  # one strategy starts late
    sessions = np.asarray(pd.bdate_range("2021-01-04", periods=T).values.astype("datetime64[D]"))
    return ReturnsPanel(
        sessions=sessions,
        strategies=tuple(f"s{j}" for j in range(n)),
        values=values,
        first=np.zeros(n, dtype=np.intp),
    )


BUSY = AllocatorConfig(
    sizing=SizingConfig(vol_window=20, rebalance_every=15),
    correlation=CorrelationConfig(window=25, threshold=0.5, persistence=4),
    breaker=BreakerConfig(sharpe_window=25, half_at=-0.05, halt_at=-0.09),
)


@pytest.mark.parametrize("method", ["inverse_vol", "erc"])
def test_step_by_step_block_and_shared_statistics_agree(method: str) -> None:
    """One engine, three drivers: session by session, in blocks, over shared statistics."""
    import dataclasses

    config = dataclasses.replace(BUSY, sizing=dataclasses.replace(BUSY.sizing, method=method))
    panel = _busy_panel(3)
    blocked = replay(panel, config)
    assert {e.kind for e in blocked.events} >= {"bench", "readmit", "breaker", "rebalance"}
    shared = decide(panel, config, statistics(panel, config))
    seen: list[int] = []
    one_by_one = replay(
        panel, config, on_pairs=lambda d, stream, p: seen.append(int(stream.breach_run.sum()))
    )
    assert len(seen) == len(panel.sessions)
    assert one_by_one.events == blocked.events
    np.testing.assert_array_equal(one_by_one.final_weight, blocked.final_weight)
    engine = AllocatorEngine(panel.strategies, config)
    steps = [engine.step(panel.sessions[t], panel.values[t]) for t in range(len(panel.sessions))]
    assert shared.events == blocked.events
    assert [e for d in steps for e in d.events] == blocked.events
    for name in ("vol", "sharpe", "mtd", "base_weight", "final_weight", "capital", "multiplier"):
        np.testing.assert_array_equal(getattr(shared, name), getattr(blocked, name), name)
        np.testing.assert_array_equal(
            np.array([getattr(d, name) for d in steps]), getattr(blocked, name), name
        )
    np.testing.assert_array_equal(shared.benched, blocked.benched)
    np.testing.assert_array_equal(shared.breaker_state, blocked.breaker_state)


def test_summary_of_a_book_that_never_moves() -> None:
    panel = hand_panel()
    result = replay(panel, AllocatorConfig())  # default windows: nothing is ever allocated
    summary = summarize(book_of(result, panel.values), result.events)
    assert summary["vol"] == 0.0
    assert summary["cagr"] == 0.0
    assert np.isnan(summary["sharpe"])


def test_a_full_event_buffer_is_drained_without_losing_an_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import allocator.replay as engine

    panel = _busy_panel(3)
    whole = replay(panel, BUSY)
    monkeypatch.setattr(engine, "_EVENT_ROWS", 1)  # 8n + 8 = 48 rows: drained every few sessions
    small = replay(panel, BUSY)
    assert len(whole.events) > 48
    assert small.events == whole.events
    np.testing.assert_array_equal(small.final_weight, whole.final_weight)


def test_the_report_draws_with_the_dashboards_figure_functions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import allocator.dashboard as dashboard
    import allocator.figures as dash
    from allocator.report import replay_report

    for name in ("equity_figure", "allocation_figure", "correlation_figure", "html_page"):
        assert getattr(dashboard, name) is getattr(dash, name)  # one set of functions

    called: list[str] = []
    for name in (
        "equity_figure",
        "allocation_figure",
        "benches_figure",
        "breaker_figure",
        "correlation_figure",
    ):
        real = getattr(dash, name)

        def spy(*args, _real=real, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            called.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(dash, name, spy)
    panel = _busy_panel(2, T=200)
    result = replay(panel, BUSY)
    book = book_of(result, panel.values)
    page = replay_report(panel, result, book, summarize(book, result.events), BUSY)
    assert sorted(called) == sorted(
        [
            "equity_figure",
            "allocation_figure",
            "benches_figure",
            "breaker_figure",
            "correlation_figure",
        ]
    )
    assert page.count("plotly.js v") <= 2  # the library inlined once, not per figure
