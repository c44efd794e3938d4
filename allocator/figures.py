"""The charts of every page: the dashboard, the replay report and the sweep page.

Each figure function returns a plain Plotly figure, ``{"data": [...], "layout": {...}}`` in
Plotly's JSON schema, and :func:`html_page` writes the self-contained page: Plotly's
JavaScript inlined once, then one ``Plotly.newPlot`` per figure. The dashboard
(:mod:`allocator.dashboard`), the replay report (:func:`allocator.report.replay_report`) and
the sweep page (:mod:`allocator.research.page`) all draw with these functions.

Why plain dicts and not ``plotly.graph_objects``: building ``go.Figure`` objects validates and
deep-copies every property, and importing ``plotly.graph_objects`` and pandas (which the old
functions took their tables in) cost ``allocator replay`` about 0.8 s of its 1.5 s budget
(``replay_cli_wall_s``) for five charts. This module imports neither: the page needs only
Plotly's JavaScript and its default template, read as files from the installed ``plotly``
package (so the page looks as ``fig.to_html`` drew it). The schema is Plotly's own, so a
figure can still be handed to ``plotly.graph_objects.Figure(fig)`` to validate it, which the
tests do.

Every text shown is escaped (:func:`label`): Plotly renders labels as HTML-like markup, and a
strategy name is shown as the text it is. The figure JSON is written inside ``<script>`` with
``</`` escaped, so no value can close the script.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from allocator.arrays import FloatArray
from allocator.states import BreakerState

__all__ = [
    "Figure",
    "Performance",
    "allocation_figure",
    "benches_figure",
    "breaker_figure",
    "correlation_figure",
    "equity_figure",
    "html_page",
    "label",
    "numbers",
    "palette",
    "perf_table_html",
    "performance",
]

Figure = dict[str, Any]
"""A Plotly figure as JSON: ``{"data": [trace, ...], "layout": {...}}``."""

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
# plotly.py's "RdBu_r" (plotly.js has no reversed names): blue at -1, white at 0, red at +1.
_RDBU_R = (
    "rgb(5,48,97)",
    "rgb(33,102,172)",
    "rgb(67,147,195)",
    "rgb(146,197,222)",
    "rgb(209,229,240)",
    "rgb(247,247,247)",
    "rgb(253,219,199)",
    "rgb(244,165,130)",
    "rgb(214,96,77)",
    "rgb(178,24,43)",
    "rgb(103,0,31)",
)
_BREAKER_COLOURS = [
    [0.0, "#2ca02c"],
    [0.33, "#2ca02c"],
    [0.34, "#ff7f0e"],
    [0.66, "#ff7f0e"],
    [0.67, "#d62728"],
    [1.0, "#d62728"],
]
_DEFAULT_HEIGHT = 450  # px: plotly.js's own default


@dataclass(frozen=True, slots=True)
class Performance:
    """Figures of one equity curve (annualised; risk-free rate 0).

    Attributes
    ----------
    annual_return : float
        Compound annual growth rate.
    volatility : float
        Annualised standard deviation of the session returns.
    sharpe : float
        Annualised mean ÷ standard deviation of the session returns; NaN when flat.
    max_drawdown : float
        Largest peak-to-trough fall, <= 0.
    """

    annual_return: float
    volatility: float
    sharpe: float
    max_drawdown: float


def performance(equity: FloatArray, annualization: int = 252) -> Performance:
    """Compute the figures of an equity curve sampled once per session (first value: the start).

    Parameters
    ----------
    equity : numpy.ndarray of float64, shape (n,)
        Equity in account currency, n >= 3, first value > 0.
    annualization : int, default 252
        Sessions per year.

    Returns
    -------
    Performance

    Raises
    ------
    ValueError
        Fewer than three points, or a first value <= 0.
    """
    e = np.asarray(equity, dtype=np.float64)
    r = e[1:] / e[:-1] - 1.0
    n = len(r)
    if n < 2 or e[0] <= 0:
        raise ValueError("performance needs at least three positive equity points")
    growth = e[-1] / e[0]
    annual = growth ** (annualization / n) - 1.0 if growth > 0 else -1.0
    sd = float(np.std(r, ddof=1))
    vol = sd * math.sqrt(annualization)
    sharpe = float(np.mean(r)) / sd * math.sqrt(annualization) if sd > 0 else float("nan")
    peak = np.maximum.accumulate(e)
    return Performance(
        annual_return=float(annual),
        volatility=vol,
        sharpe=sharpe,
        max_drawdown=float(np.min(e / peak - 1.0)),
    )


def label(name: object) -> str:
    """Escape a strategy name (or a label made of names) for Plotly.

    Plotly's labels are HTML-like (``<a href>``, ``<b>``): every ``<``, ``>``, ``&`` and quote
    is escaped so that a name is shown as the text it is.
    """
    return html.escape(str(name))


def palette(names: Sequence[str]) -> dict[str, str]:
    """Give each strategy the dashboard's colour, in the given order."""
    return {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(names)}


def numbers(values: Any) -> list[Any]:
    """Numbers for a figure: a (nested) list of floats, ``None`` where not finite.

    Plotly draws ``null`` as a gap; JSON has no NaN or infinity.
    """
    array = np.asarray(values, dtype=np.float64)
    clean = array.astype(object)
    clean[~np.isfinite(array)] = None
    out: list[Any] = clean.tolist()
    return out


def _figure(traces: list[dict[str, Any]], **layout: Any) -> Figure:
    return {"data": traces, "layout": layout}


def equity_figure(x: Sequence[str], curves: Mapping[str, FloatArray], title: str) -> Figure:
    """Draw equity curves (one line each) over the dates ``x`` (ISO strings)."""
    traces = [
        {"type": "scatter", "x": list(x), "y": numbers(c), "name": label(n), "mode": "lines"}
        for n, c in curves.items()
    ]
    return _figure(traces, title={"text": title})


def allocation_figure(
    x: Sequence[str],
    columns: Sequence[str],
    amounts: FloatArray,
    total: float,
    colour: Mapping[str, str],
    title: str,
) -> Figure:
    """Draw stacked allocations with cash on top.

    ``amounts[t, j]`` is strategy ``columns[j]``'s amount on date ``x[t]`` (NaN: none). Cash
    is ``total`` minus the row's sum: capital in account currency with ``total_capital``,
    weights with ``total = 1``.
    """
    values = np.asarray(amounts, dtype=np.float64).reshape(len(x), len(columns))
    traces = [
        {
            "type": "scatter",
            "x": list(x),
            "y": numbers(values[:, j]),
            "name": label(s),
            "stackgroup": "alloc",
            "mode": "lines",
            "line": {"color": colour.get(str(s))},
        }
        for j, s in enumerate(columns)
    ]
    traces.append(
        {
            "type": "scatter",
            "x": list(x),
            "y": numbers(total - np.nansum(values, axis=1)),
            "name": "cash (freed or unallocated)",
            "stackgroup": "alloc",
            "mode": "lines",
            "line": {"color": "#cccccc"},
        }
    )
    return _figure(traces, title={"text": title})


def correlation_figure(names: Sequence[str], corr: FloatArray, title: str) -> Figure:
    """Draw a correlation matrix (``names`` × ``names``) as an annotated heatmap in [-1, 1]."""
    matrix = np.asarray(corr, dtype=np.float64)
    shown = [label(n) for n in names]
    trace = {
        "type": "heatmap",
        "z": numbers(matrix),
        "x": shown,
        "y": shown,
        "zmin": -1,
        "zmax": 1,
        "colorscale": [[i / 10, c] for i, c in enumerate(_RDBU_R)],
        "text": [["" if v != v else f"{v:.2f}" for v in row] for row in matrix.tolist()],
        "texttemplate": "%{text}",
    }
    return _figure([trace], title={"text": title})


def benches_figure(
    flag_dates: Sequence[str],
    flag_pairs: Sequence[str],
    bench_dates: Sequence[str],
    bench_strategies: Sequence[str],
) -> Figure:
    """Draw the timeline of flagged pairs (``"a / b"`` on a date) and benched strategies."""
    marker = {"symbol": "line-ns-open", "size": 9}
    traces = [
        {
            "type": "scatter",
            "x": list(flag_dates),
            "y": ["flagged: " + label(p) for p in flag_pairs],
            "mode": "markers",
            "marker": {**marker, "color": "#d62728"},
            "name": "pair flagged (corr > threshold for the persistence)",
        },
        {
            "type": "scatter",
            "x": list(bench_dates),
            "y": ["benched: " + label(s) for s in bench_strategies],
            "mode": "markers",
            "marker": {**marker, "color": "#7f7f7f"},
            "name": "strategy benched",
        },
    ]
    return _figure(traces, title={"text": "Flagged pairs and benches"}, height=380)


def breaker_figure(
    x: Sequence[str], names: Sequence[str], codes: npt.NDArray[np.floating[Any]]
) -> Figure:
    """Draw breaker states as a heatmap: ``codes[t, j]`` is strategy ``j``'s state on ``x[t]``.

    A code is a :class:`~allocator.states.BreakerState` value (NaN: no state that date).
    """
    trace = {
        "type": "heatmap",
        "z": numbers(np.asarray(codes, dtype=np.float64).T),
        "x": list(x),
        "y": [label(n) for n in names],
        "zmin": 0,
        "zmax": 2,
        "colorscale": _BREAKER_COLOURS,
        "colorbar": {
            "tickvals": [int(state) for state in BreakerState],
            "ticktext": [state.label for state in BreakerState],
        },
    }
    return _figure([trace], title={"text": "Drawdown breaker state per strategy"}, height=340)


def perf_table_html(rows: Sequence[tuple[str, float, Performance]]) -> str:
    """Render the comparison table: per portfolio, its final equity and its figures."""
    body = "".join(
        f"<tr><td>{html.escape(str(name))}</td><td>{final:,.0f}</td>"
        f"<td>{p.annual_return:.2%}</td><td>{p.volatility:.2%}</td>"
        f"<td>{p.sharpe:.2f}</td><td>{p.max_drawdown:.2%}</td></tr>"
        for name, final, p in rows
    )
    return (
        "<table class='k'><tr><th>portfolio</th><th>final equity</th><th>annual return</th>"
        f"<th>volatility</th><th>Sharpe</th><th>max drawdown</th></tr>{body}</table>"
    )


@functools.cache
def _plotly_files() -> tuple[str, dict[str, Any]]:
    """Read Plotly's JavaScript and its default template from the installed package."""
    spec = importlib.util.find_spec("plotly")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("plotly is not installed: the pages inline its JavaScript")
    data = Path(next(iter(spec.submodule_search_locations))) / "package_data"
    script = (data / "plotly.min.js").read_text(encoding="utf-8")
    template: dict[str, Any] = json.loads(
        (data / "templates" / "plotly.json").read_text(encoding="utf-8")
    )
    return script, template


def _script_json(value: object) -> str:
    """JSON safe inside ``<script>``: no ``</`` can end the script early."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def html_page(title: str, body: Sequence[str], figures: Sequence[tuple[str, Figure]]) -> str:
    """Assemble one self-contained page: ``body`` HTML, then the figures (Plotly JS once)."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:24px;max-width:1400px}"
        "table.k{border-collapse:collapse}table.k td,table.k th{padding:4px 10px;"
        "border-bottom:1px solid #ddd;text-align:right}table.k td:first-child{text-align:left}"
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *body,
    ]
    if figures:
        script, template = _plotly_files()
        parts.append(
            '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};'
            f'</script>\n<script type="text/javascript">{script}</script>'
        )
        config = _script_json({"displaylogo": False, "responsive": True})
        for name, fig in figures:
            div_id = html.escape(f"chart-{name}")
            layout = {"template": template, **fig["layout"]}
            height = int(layout.get("height", _DEFAULT_HEIGHT))
            parts.append(
                f'<section><div id="{div_id}" class="plotly-graph-div" '
                f'style="height:{height}px; width:100%;"></div>'
                '<script type="text/javascript">Plotly.newPlot('
                f"{_script_json(div_id)}, {_script_json(fig['data'])}, "
                f"{_script_json(layout)}, {config});</script></section>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
