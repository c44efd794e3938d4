"""The demo's dashboard in a real browser: loads offline, no console errors, every chart has
data, a screenshot is saved."""

from __future__ import annotations

from typing import Any

from .browser import inspect_dashboard

CHARTS = (
    "chart-equity",
    "chart-pnl",
    "chart-allocations",
    "chart-correlation",
    "chart-benches",
    "chart-breaker",
    "chart-netting",
    "chart-venues",
)


def test_dashboard_renders_offline_with_data_in_every_chart(short_demo: Any) -> None:
    result, _, root = short_demo
    shot = root / "dashboard.png"
    seen = inspect_dashboard(result.dashboard, shot)
    assert seen["console_errors"] == []
    assert seen["page_errors"] == []
    assert seen["remote_requests"] == []  # Plotly's JavaScript is embedded
    charts = {c["id"]: c for c in seen["charts"]}
    assert sorted(charts) == sorted(CHARTS)
    for name, chart in charts.items():
        assert chart["traces"] > 0, name
        assert all(n > 0 for n in chart["points"]), (name, chart["points"])
    assert shot.stat().st_size > 50_000
