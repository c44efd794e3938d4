"""``sweep.html`` and the terminal's heatmap: the sweep's metrics over any two grid keys.

For every pair of grid keys with at least two values each, two heatmaps: the metric averaged
over every other key (marginalised), and the metric with every other key fixed at the base
configuration's value (or the grid's first value of that key when the base value is not in
the grid). A menu switches the metric. With a single swept key, one line per metric.
"""

from __future__ import annotations

import html
import itertools
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from allocator.figures import Figure
    from allocator.research.grid import Grid
    from allocator.research.walk_forward import WalkForward

__all__ = ["fixed_values", "pivot", "sweep_page", "text_heatmap"]

_SHOWN = ("sharpe", "cagr", "max_drawdown", "vol", "turnover", "benches", "breaker_trips")


def fixed_values(table: pd.DataFrame, grid: Grid) -> dict[str, Any]:
    """Return, per grid key, the value the "fixed" heatmaps hold it at (see the module)."""
    from allocator.config import AllocatorConfig

    base = AllocatorConfig.from_mapping(grid.base)
    out: dict[str, Any] = {}
    for key in grid.keys:
        section, _, name = key.partition(".")
        value = getattr(getattr(base, section), name)
        column = table[key]
        out[key] = value if (column == value).any() else column.iloc[0]
    return out


def pivot(
    table: pd.DataFrame,
    x: str,
    y: str,
    metric: str,
    *,
    fixed: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Return ``metric`` over ``y`` (rows) × ``x`` (columns).

    The mean over the other keys, or over the rows where every other key equals ``fixed``'s.
    """
    frame = table
    if fixed is not None:
        for key, value in fixed.items():
            if key not in (x, y):
                frame = frame[frame[key] == value]
    return frame.pivot_table(index=y, columns=x, values=metric, aggfunc="mean", sort=True)


def text_heatmap(table: pd.DataFrame, x: str, y: str, metric: str = "sharpe") -> str:
    """Format :func:`pivot` (marginalised) as an aligned text table, as the CLI prints it."""
    grid = pivot(table, x, y, metric)
    head = f"{metric} (mean over the other keys): rows {y}, columns {x}"
    width = max(8, *(len(str(c)) + 1 for c in grid.columns))
    label = max(len(y), *(len(str(i)) for i in grid.index)) + 1
    lines = [head, f"{y:<{label}}" + "".join(f"{c!s:>{width}}" for c in grid.columns)]
    for idx, row in grid.iterrows():
        cells = "".join(
            f"{'':>{width}}" if math.isnan(v) else f"{v:>{width}.3f}" for v in row.to_numpy()
        )
        lines.append(f"{idx!s:<{label}}" + cells)
    return "\n".join(lines)


def _heatmap(
    table: pd.DataFrame, x: str, y: str, fixed: dict[str, Any] | None, title: str
) -> Figure:
    from allocator.figures import label, numbers

    metrics = [m for m in _SHOWN if m in table.columns]
    traces = []
    for i, metric in enumerate(metrics):
        grid = pivot(table, x, y, metric, fixed=fixed)
        traces.append(
            {
                "type": "heatmap",
                "z": numbers(grid.to_numpy(dtype=float)),
                "x": [label(c) for c in grid.columns],
                "y": [label(r) for r in grid.index],
                "colorscale": "Viridis",
                "texttemplate": "%{z:.3f}",
                "name": metric,
                "visible": i == 0,
            }
        )
    buttons = [
        {
            "label": metric,
            "method": "update",
            "args": [{"visible": [j == i for j in range(len(metrics))]}],
        }
        for i, metric in enumerate(metrics)
    ]
    layout = {
        "title": {"text": label(title)},
        "xaxis": {"title": {"text": label(x)}, "type": "category"},
        "yaxis": {"title": {"text": label(y)}, "type": "category"},
        "updatemenus": [{"buttons": buttons, "x": 1.0, "y": 1.15, "showactive": True}],
    }
    return {"data": traces, "layout": layout}


def _lines(table: pd.DataFrame, x: str) -> Figure:
    from allocator.figures import label, numbers

    traces = [
        {
            "type": "scatter",
            "x": [label(v) for v in table[x]],
            "y": numbers(table[metric].to_numpy(dtype=float)),
            "name": metric,
        }
        for metric in _SHOWN
    ]
    layout = {
        "title": {"text": f"metrics over {label(x)}"},
        "xaxis": {"title": {"text": label(x)}, "type": "category"},
    }
    return {"data": traces, "layout": layout}


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{v:.4g}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table class='k'><tr>{head}</tr>{body}</table>"


def sweep_page(table: pd.DataFrame, grid: Grid, walk: WalkForward | None = None) -> str:
    """Build ``sweep.html``: the heatmaps, the best cells, the walk-forward when there is one."""
    from allocator.figures import html_page

    swept = [k for k in grid.keys if table[k].nunique() >= 2]
    fixed = fixed_values(table, grid)
    figures: list[tuple[str, Figure]] = []
    for n, (x, y) in enumerate(itertools.combinations(swept, 2)):
        others = [k for k in grid.keys if k not in (x, y)]
        figures.append(
            (f"mean-{n}", _heatmap(table, x, y, None, f"{y} × {x}, mean over the other keys"))
        )
        if others:
            shown = ", ".join(f"{k}={fixed[k]}" for k in others)
            figures.append((f"fixed-{n}", _heatmap(table, x, y, fixed, f"{y} × {x}, {shown}")))
    if len(swept) == 1:
        figures.append(("lines", _lines(table, swept[0])))
    best = table.sort_values("sharpe", ascending=False, na_position="last").head(10)
    body = [
        f"<p>{len(table)} configurations over {', '.join(grid.keys)}"
        + (f"; {len(grid.skipped)} combinations refused by the config" if grid.skipped else "")
        + ". Metrics as in summary.json.</p>",
        "<h2>Best 10 by Sharpe</h2>",
        _table_html(best),
    ]
    if walk is not None:
        body += [
            "<h2>Walk-forward</h2>",
            f"<p><b>{html.escape(walk.verdict)}</b></p>",
            _table_html(walk.summary),
            _table_html(walk.windows),
        ]
    return html_page("Allocator sweep", body, figures)
