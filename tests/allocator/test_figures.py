"""The pages' figures are Plotly's own schema, and nothing in them can run as script
(allocator/figures.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

import allocator.dashboard as dashboard
import allocator.figures as figures
from allocator.book import book_of, summarize
from allocator.config import AllocatorConfig
from allocator.replay import replay
from allocator.report import replay_report, window_correlation
from allocator.research.grid import parse_grid
from allocator.research.page import sweep_page
from allocator.research.sweep import run_sweep
from tests.allocator.test_book import BUSY, _busy_panel
from tests.allocator.test_research import BASE, GRID
from tests.allocator.test_returns_check import LINK, SCRIPT, _history


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, figures.Figure]]:
    """Every figure handed to ``html_page``, by whichever page."""
    seen: list[tuple[str, figures.Figure]] = []
    real = figures.html_page

    def spy(title: str, body: Any, figs: Any) -> str:
        seen.extend(figs)
        return real(title, body, figs)

    monkeypatch.setattr(figures, "html_page", spy)
    monkeypatch.setattr(dashboard, "html_page", spy)
    return seen


def _validate(drawn: list[tuple[str, figures.Figure]], names: set[str]) -> None:
    assert {name for name, _ in drawn} == names
    for name, fig in drawn:
        go.Figure(fig)  # plotly.py's validators: raises on any property not in the schema
        assert fig["data"], name


def test_the_report_figures_are_plotly_figures(drawn: list[tuple[str, Any]]) -> None:
    panel = _busy_panel(2, T=200)
    result = replay(panel, BUSY)
    book = book_of(result, panel.values)
    flags = [("2020-03-02", "s0 / s1")]
    replay_report(panel, result, book, summarize(book, result.events), BUSY, flags=flags)
    _validate(drawn, {"equity", "weights", "benches", "breaker", "correlation"})
    benches = dict(drawn)["benches"]["data"]
    assert benches[0]["x"] == ["2020-03-02"]
    assert benches[0]["y"] == ["flagged: s0 / s1"]


def test_the_dashboard_figures_are_plotly_figures(drawn: list[tuple[str, Any]]) -> None:
    dashboard.build_dashboard(_history(), AllocatorConfig())
    _validate(
        drawn,
        {"equity", "pnl", "allocations", "correlation", "benches", "breaker", "netting", "venues"},
    )


def test_the_sweep_figures_are_plotly_figures(drawn: list[tuple[str, Any]], tmp_path: Path) -> None:
    grid = parse_grid(GRID, BASE)
    table = run_sweep(_busy_panel(7), grid, tmp_path, progress=False).table
    sweep_page(table, grid)
    assert drawn
    assert all(name.startswith(("mean-", "fixed-")) for name, _ in drawn)
    _validate(drawn, {name for name, _ in drawn})


def test_no_value_can_close_the_script() -> None:
    fig = figures.equity_figure(["2024-01-02"], {SCRIPT: np.array([1.0])}, "</script>x")
    page = figures.html_page("t", [], [("a", fig)])
    scripts = page.count("<script")
    assert page.count("</script>") == scripts  # every script closes only where it was opened
    assert "</script>x" not in page
    assert SCRIPT not in page
    assert figures.label(LINK) != LINK


def test_numbers_are_json_with_gaps_for_what_is_not_finite() -> None:
    got = figures.numbers([[1.5, math.nan], [math.inf, -0.0]])
    assert got == [[1.5, None], [None, -0.0]]
    assert math.copysign(1.0, got[1][1]) == -1.0


def test_the_window_correlation_is_pandas() -> None:
    import pandas as pd

    rng = np.random.default_rng(5)
    values = rng.normal(size=(90, 4))
    values[10, 1] = np.nan  # a gap: that column's pairs are undefined over the window
    values[:, 3] = 0.25  # flat: undefined too
    ours = window_correlation(values)
    theirs = pd.DataFrame(values).corr(min_periods=90).to_numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12, equal_nan=True)
