"""The unified P&L dashboard: one self-contained HTML file built from the ledger's history.

Pure: :class:`LedgerHistory` holds what the ledger recorded (bars, virtual and broker fills,
netting savings, published allocations, events, the strategies' own returns) plus each bar's
reference prices; :func:`book_series` marks every strategy's virtual book and the broker's book
to market after each bar with exact decimals; :func:`build_dashboard` draws it with Plotly,
its JavaScript embedded so that the file works offline.

Attributed P&L of a strategy after bar ``b`` = its cash (the sum of its virtual fills' cash)
plus Σ its position × the bar's reference price (the last price seen before, for a symbol the
bar has no price for). The book's P&L is the same figure computed from the broker's own fills.
SPEC §7's attribution invariants make the two equal exactly; the dashboard shows both and
:attr:`BookSeries.unexplained` is their difference (zero, to the cent and below). It also draws
the published allocations (§6), the flagged pairs and benches (§3), the breaker states (§5)
and the netting savings (§7). The ``dashboard`` asset (``assets/dashboard.py``) reads the
ledger into a :class:`LedgerHistory` and writes the file.

Why the marks are :class:`~decimal.Decimal` and not float: the dashboard's claim is that the
strategies' P&L sums to the book's exactly, and a float sum over thousands of fills would leave
a rounding residue that looks like unexplained P&L. Why the replay engine is imported inside
:func:`flagged_pairs`: it pulls in numba, and this module is loaded by the code location that
every bar run starts with.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import numpy as np
import pandas as pd

from allocator.arrays import FloatArray
from allocator.config import AllocatorConfig
from allocator.data import build_panel, validate_returns
from allocator.figures import (
    Figure,
    Performance,
    allocation_figure,
    benches_figure,
    breaker_figure,
    correlation_figure,
    equity_figure,
    html_page,
    label,
    numbers,
    palette,
    perf_table_html,
    performance,
)
from allocator.returns_check import (
    ReturnDivergence,
    describe,
    return_divergences,
    traded_sessions,
)
from allocator.states import BreakerState

__all__ = [
    "BookSeries",
    "BrokerFillRow",
    "LedgerHistory",
    "Performance",
    "RiskView",
    "VirtualFillRow",
    "allocation_figure",
    "benches_figure",
    "book_series",
    "breaker_figure",
    "build_dashboard",
    "cents_summing_to",
    "comparison",
    "correlation_figure",
    "divergences_html",
    "equity_figure",
    "flagged_pairs",
    "html_page",
    "palette",
    "perf_table_html",
    "performance",
    "reported_vs_attributed",
    "risk_html",
    "summary_frames",
]

_CENT = Decimal("0.01")
_STATE_CODE = {state.label: int(state) for state in BreakerState}


@dataclass(frozen=True, slots=True)
class VirtualFillRow:
    """A strategy's virtual fill of one bar (``qty`` signed, ``cash`` = −qty × price − fee).

    Attributes
    ----------
    bar : str
        The bar, as the ledger keys it (``YYYY-MM-DD`` or a UTC instant ``...Z``).
    strategy : str
        The strategy's name.
    symbol : str
        The instrument's symbol.
    qty : decimal.Decimal
        Base units (shares, contracts, coins), signed: + bought, − sold.
    price : decimal.Decimal
        Quote currency per base unit: the broker's average price, or the reference price for
        an internal cross with no broker fill.
    cash : decimal.Decimal
        Quote currency, + received: −qty × price − the strategy's fee share (0 for an internal
        cross).
    internal : bool
        True for the part crossed internally against other strategies (no broker order).
    """

    bar: str
    strategy: str
    symbol: str
    qty: Decimal
    price: Decimal
    cash: Decimal
    internal: bool


@dataclass(frozen=True, slots=True)
class BrokerFillRow:
    """A broker fill of one bar: ``qty`` signed (+ bought), ``cash`` = −qty × price − fee.

    Attributes
    ----------
    bar : str
        The bar of the order the fill belongs to.
    symbol : str
        The instrument's symbol.
    qty : decimal.Decimal
        Base units, signed: + bought, − sold.
    cash : decimal.Decimal
        Quote currency, + received: −qty × price − fee.
    """

    bar: str
    symbol: str
    qty: Decimal
    cash: Decimal


@dataclass(frozen=True, slots=True)
class RiskView:
    """The risk stage as the dashboard shows it (docs/spec-12-risk.md).

    ``trading_state`` is the book's (``active``, ``reducing``, ``halted``), ``venue_states``
    each venue's, ``detail`` who set the book's state and why; ``denials`` the latest denials,
    newest first, each a mapping with ``bar``, ``intent_id``, ``strategy``, ``symbol``,
    ``reason``, ``limit``, ``value`` and ``detail`` (text); ``counts`` every denial per reason.
    """

    trading_state: str
    venue_states: Mapping[str, str]
    detail: str
    denials: tuple[Mapping[str, str], ...]
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class LedgerHistory:
    """Everything the dashboard reads, as the ledger recorded it.

    ``prices[bar][symbol]`` are the bar's reference prices; ``venues[symbol]`` each symbol's
    venue; ``allocations`` has columns ``date, strategy, capital, final_weight, breaker_state,
    benched``; ``events`` ``date, kind, strategy, detail``; ``returns`` ``date, strategy,
    return``; ``savings[bar]`` is ``(would_pay, fee_paid)``; ``refusals`` counts cut or refused
    intents by reason.

    Attributes
    ----------
    bars : tuple of str
        Every recorded bar, ascending. The comparison curves look the strategies' returns up by
        bar key, so they assume daily bars keyed ``YYYY-MM-DD``.
    virtual_fills : tuple of VirtualFillRow
        Every strategy's virtual fills.
    broker_fills : tuple of BrokerFillRow
        Every broker fill.
    savings : mapping of str to (Decimal, Decimal)
        Per bar: the fees the accepted intents would have paid as separate orders, and the fee
        actually paid; quote currency, >= 0.
    prices : mapping of str to mapping of str to Decimal
        Per bar, per symbol: the reference price, quote currency per base unit.
    venues : mapping of str to str
        Per symbol: the venue it is routed to.
    allocations : pandas.DataFrame
        The published allocations (``capital`` in account currency, ``final_weight`` a
        fraction of ``total_capital``, ``breaker_state`` its label, ``benched`` bool).
    events : pandas.DataFrame
        The rules' events as in ``events.csv``.
    returns : pandas.DataFrame
        The strategies' own daily simple returns (fractions), long format.
    refusals : mapping of str to int
        Count of cut or refused intents per reason, >= 0.
    total_capital : float
        Account currency, >= 0 (``allocation.total_capital``); every equity curve starts here.
    risk : RiskView or None
        The trading states and the latest risk denials (``None``: not shown).
    """

    bars: tuple[str, ...]
    virtual_fills: tuple[VirtualFillRow, ...]
    broker_fills: tuple[BrokerFillRow, ...]
    savings: Mapping[str, tuple[Decimal, Decimal]]
    prices: Mapping[str, Mapping[str, Decimal]]
    venues: Mapping[str, str]
    allocations: pd.DataFrame
    events: pd.DataFrame
    returns: pd.DataFrame
    refusals: Mapping[str, int]
    total_capital: float
    risk: RiskView | None = None


@dataclass(frozen=True, slots=True)
class BookSeries:
    """Per-bar marks of every strategy's virtual book and of the broker's book.

    ``strategy_pnl[s][b]`` and ``book_pnl[b]`` are exact decimals (quote currency);
    ``venue_gross[v][b]`` the book's gross notional at venue ``v``; ``savings_cum`` the
    cumulative netting savings (fees) and ``crossed_cum`` the cumulative notional crossed
    internally (turnover that never reached a broker).

    Attributes
    ----------
    bars : tuple of str
        The bars, ascending; index ``b`` of every series.
    strategies : tuple of str
        Strategies with returns or virtual fills, in code-point order.
    strategy_pnl : mapping of str to tuple of Decimal
        Per strategy, per bar: attributed P&L since the first bar, quote currency, signed
        (+ profit); cash plus the positions marked at the bar's prices.
    book_pnl : tuple of Decimal
        Per bar: the broker book's P&L computed the same way from the broker's fills.
    venue_gross : mapping of str to numpy.ndarray of float64
        Per venue, per bar: Σ |book position| × price, quote currency, >= 0 (symbols with no
        known venue are not counted).
    savings_cum : tuple of Decimal
        Per bar: cumulative (fees the intents would have paid − fee paid), quote currency.
    fees_cum : tuple of Decimal
        Per bar: cumulative fees paid to brokers, quote currency, >= 0.
    crossed_cum : tuple of Decimal
        Per bar: cumulative notional crossed internally, quote currency, >= 0 (each cross
        counted once, though both sides are recorded).
    """

    bars: tuple[str, ...]
    strategies: tuple[str, ...]
    strategy_pnl: Mapping[str, tuple[Decimal, ...]]
    book_pnl: tuple[Decimal, ...]
    venue_gross: Mapping[str, FloatArray]
    savings_cum: tuple[Decimal, ...]
    fees_cum: tuple[Decimal, ...]
    crossed_cum: tuple[Decimal, ...]

    @property
    def attributed_total(self) -> tuple[Decimal, ...]:
        """Per bar, the sum of the strategies' attributed P&L (exact)."""
        return tuple(
            sum((self.strategy_pnl[s][b] for s in self.strategies), Decimal(0))
            for b in range(len(self.bars))
        )

    @property
    def unexplained(self) -> Decimal:
        """Largest |book P&L − Σ attributed P&L| over the bars (0 when attribution is exact)."""
        return max(
            (abs(a - b) for a, b in zip(self.book_pnl, self.attributed_total, strict=True)),
            default=Decimal(0),
        )


def _mark(
    positions: Mapping[str, Decimal], prices: Mapping[str, Decimal], last: dict[str, Decimal]
) -> Decimal:
    value = Decimal(0)
    for symbol, qty in positions.items():
        if qty:
            price = prices.get(symbol, last.get(symbol))
            if price is None:
                raise ValueError(f"no price ever seen for held symbol {symbol}")
            value += qty * price
    return value


def book_series(history: LedgerHistory) -> BookSeries:
    """Mark every strategy's virtual book and the broker's book after each bar (exact).

    Parameters
    ----------
    history : LedgerHistory
        What the ledger recorded.

    Returns
    -------
    BookSeries

    Raises
    ------
    ValueError
        A held symbol has had no price in this or any earlier bar.
    """
    strategies = tuple(
        sorted(set(history.returns["strategy"]) | {f.strategy for f in history.virtual_fills})
    )
    by_bar_v: dict[str, list[VirtualFillRow]] = {}
    for f in history.virtual_fills:
        by_bar_v.setdefault(f.bar, []).append(f)
    by_bar_b: dict[str, list[BrokerFillRow]] = {}
    for g in history.broker_fills:
        by_bar_b.setdefault(g.bar, []).append(g)
    pos: dict[str, dict[str, Decimal]] = {s: {} for s in strategies}
    cash = dict.fromkeys(strategies, Decimal(0))
    book_pos: dict[str, Decimal] = {}
    book_cash = Decimal(0)
    last_price: dict[str, Decimal] = {}
    pnl: dict[str, list[Decimal]] = {s: [] for s in strategies}
    book: list[Decimal] = []
    venues = sorted(set(history.venues.values()))
    gross: dict[str, list[float]] = {v: [] for v in venues}
    savings: list[Decimal] = []
    fees: list[Decimal] = []
    crossed: list[Decimal] = []
    saved = paid = cross = Decimal(0)
    for bar in history.bars:
        for f in by_bar_v.get(bar, ()):
            held = pos[f.strategy]
            held[f.symbol] = held.get(f.symbol, Decimal(0)) + f.qty
            cash[f.strategy] += f.cash
            if f.internal:
                cross += abs(f.qty) * f.price / 2  # both sides of a cross are recorded
        for g in by_bar_b.get(bar, ()):
            book_pos[g.symbol] = book_pos.get(g.symbol, Decimal(0)) + g.qty
            book_cash += g.cash
        prices = history.prices.get(bar, {})
        for s in strategies:
            pnl[s].append(cash[s] + _mark(pos[s], prices, last_price))
        book.append(book_cash + _mark(book_pos, prices, last_price))
        by_venue = dict.fromkeys(venues, 0.0)
        for symbol, qty in book_pos.items():
            if qty:
                price = prices.get(symbol, last_price.get(symbol, Decimal(0)))
                by_venue[history.venues.get(symbol, "other")] = by_venue.get(
                    history.venues.get(symbol, "other"), 0.0
                ) + float(abs(qty) * price)
        for v in venues:
            gross[v].append(by_venue.get(v, 0.0))
        last_price.update(prices)
        would, fee = history.savings.get(bar, (Decimal(0), Decimal(0)))
        saved += would - fee
        paid += fee
        savings.append(saved)
        fees.append(paid)
        crossed.append(cross)
    return BookSeries(
        bars=history.bars,
        strategies=strategies,
        strategy_pnl={s: tuple(v) for s, v in pnl.items()},
        book_pnl=tuple(book),
        venue_gross={v: np.array(x) for v, x in gross.items()},
        savings_cum=tuple(savings),
        fees_cum=tuple(fees),
        crossed_cum=tuple(crossed),
    )


def _returns_wide(history: LedgerHistory, bars: Sequence[str]) -> pd.DataFrame:
    wide = history.returns.pivot(index="date", columns="strategy", values="return")
    return wide.reindex(list(bars))


def comparison(history: LedgerHistory, series: BookSeries) -> dict[str, FloatArray]:
    """Equity curves over the bars: the book, equal weight and the best single strategy.

    Each starts at ``total_capital`` at the close before the first bar. Equal weight holds
    1/n of the capital in each strategy's own returns, rebalanced daily; the best single
    strategy is the one with the highest Sharpe of its own returns over the same bars. A bar
    with no return row for a strategy counts as a 0 return for it.

    Returns
    -------
    dict of str to numpy.ndarray of float64
        ``"book"``, ``"equal weight"`` and, when any strategy has a defined Sharpe,
        ``"best single (<name>)"``; each has ``len(bars) + 1`` values in account currency.
    """
    capital = history.total_capital
    book = np.array([capital] + [capital + float(p) for p in series.book_pnl])
    wide = _returns_wide(history, series.bars).fillna(0.0)
    ew = capital * np.concatenate([[1.0], np.cumprod(1.0 + wide.mean(axis=1).to_numpy())])
    curves = {"book": book, "equal weight": ew}
    sharpe = (wide.mean() / wide.std(ddof=1)).dropna()
    if not sharpe.empty:  # no defined Sharpe yet (returns not reported for these bars): no best
        best = str(sharpe.idxmax())
        single = capital * np.concatenate([[1.0], np.cumprod(1.0 + wide[best].to_numpy())])
        curves[f"best single ({best})"] = single
    return curves


def flagged_pairs(history: LedgerHistory, config: AllocatorConfig) -> pd.DataFrame:
    """Return the sessions on which each pair was flagged (SPEC §3).

    Replayed from the stored returns with the same engine as the rule set.

    Returns
    -------
    pandas.DataFrame
        Columns ``date`` (``YYYY-MM-DD``), ``pair`` (``"a / b"``) and ``corr_90d``.
    """
    # Imported here: the replay engine pulls in numba (~0.25 s), and this module is loaded by
    # the code location that every bar run starts with, before its orders go out.
    from allocator.replay import replay

    frame = validate_returns(history.returns, "ledger:daily_returns")
    panel = build_panel(frame, config.calendar.name)
    rows: list[tuple[str, str, float]] = []
    names = panel.strategies
    a_idx, b_idx = np.triu_indices(len(names), k=1)

    def on_pairs(date: np.datetime64, stream: object, persistence: int) -> None:
        breach = stream.breach_run  # type: ignore[attr-defined]
        corr = stream.corr  # type: ignore[attr-defined]
        for p in np.flatnonzero(breach >= persistence).tolist():
            pair = f"{names[int(a_idx[p])]} / {names[int(b_idx[p])]}"
            rows.append((str(date)[:10], pair, float(corr[p])))

    replay(panel, config, on_pairs=on_pairs)
    return pd.DataFrame(rows, columns=["date", "pair", "corr_90d"])


def _money(x: Decimal) -> str:
    return f"{x.quantize(_CENT):,}"


def cents_summing_to(values: Mapping[str, Decimal], total: Decimal) -> dict[str, Decimal]:
    """Round each value to the cent so that they add up to ``total`` rounded to the cent.

    Largest-remainder method: floor each, then one cent more to the largest remainders, ties by
    name. ``total`` must equal the exact sum of ``values`` (the attribution invariant).

    Parameters
    ----------
    values : mapping of str to Decimal
        Exact amounts (quote currency) per name.
    total : decimal.Decimal
        Their exact sum.

    Returns
    -------
    dict of str to Decimal
        Amounts in whole cents whose sum is ``total`` rounded to the cent.

    Raises
    ------
    ValueError
        ``values`` do not sum to ``total`` exactly.
    """
    exact_sum = sum(values.values(), Decimal(0))
    if exact_sum != total:
        raise ValueError(f"attributed P&L {exact_sum} does not sum to the book {total}")
    floors = {k: v.quantize(_CENT, rounding=ROUND_FLOOR) for k, v in values.items()}
    left = int((total.quantize(_CENT) - sum(floors.values(), Decimal(0))) / _CENT)
    order = sorted(values, key=lambda k: (-(values[k] - floors[k]), k))
    for k in order[:left]:
        floors[k] += _CENT
    return floors


def summary_frames(history: LedgerHistory, series: BookSeries) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the per-strategy attributed P&L table and the comparison table.

    Returns
    -------
    pnl : pandas.DataFrame
        ``strategy, attributed_pnl`` (Decimal, whole cents): one row per strategy, then
        ``sum of strategies`` and ``book (broker fills)``.
    perf : pandas.DataFrame
        ``portfolio, final_equity, annual_return, volatility, sharpe, max_drawdown``, one row
        per curve of :func:`comparison`.
    """
    final = cents_summing_to(
        {s: series.strategy_pnl[s][-1] for s in series.strategies}, series.book_pnl[-1]
    )
    total = sum(final.values(), Decimal(0))
    pnl = pd.DataFrame(
        {
            "strategy": [*final, "sum of strategies", "book (broker fills)"],
            "attributed_pnl": [*final.values(), total, series.book_pnl[-1].quantize(_CENT)],
        }
    )
    curves = comparison(history, series)
    perf = pd.DataFrame(
        [
            {
                "portfolio": name,
                "final_equity": float(curve[-1]),
                "annual_return": p.annual_return,
                "volatility": p.volatility,
                "sharpe": p.sharpe,
                "max_drawdown": p.max_drawdown,
            }
            for name, curve in curves.items()
            for p in [performance(curve)]
        ]
    )
    return pnl, perf


def build_dashboard(
    history: LedgerHistory, config: AllocatorConfig, *, title: str = "Allocator"
) -> str:
    """Build the whole dashboard as one HTML document (Plotly's JavaScript inlined once).

    Parameters
    ----------
    history : LedgerHistory
        What the ledger recorded; at least one bar.
    config : AllocatorConfig
        The rules' parameters (the correlation window, the calendar).
    title : str, default "Allocator"
        The page's title.

    Returns
    -------
    str
        A self-contained HTML page that works offline.

    Raises
    ------
    ValueError
        ``history`` has no bar.
    """
    if not history.bars:
        raise ValueError("the ledger has no recorded bar: nothing to draw")
    series = book_series(history)
    dates = list(series.bars)
    colour = palette(series.strategies)
    figures: list[tuple[str, Figure]] = []

    # 1. Book equity against equal weight and the best single strategy.
    curves = comparison(history, series)
    start = (dt.date.fromisoformat(dates[0]) - dt.timedelta(days=1)).isoformat()
    fig = equity_figure(
        [start, *dates], curves, "Book equity vs equal weight and the best single strategy"
    )
    figures.append(("equity", fig))

    # 2. Attributed P&L per strategy: curves (left), and a table that sums to the book (right).
    pnl, perf = summary_frames(history, series)
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "x": dates,
            "y": numbers([float(v) for v in series.strategy_pnl[s]]),
            "name": label(s),
            "mode": "lines",
            "line": {"color": colour[s]},
        }
        for s in series.strategies
    ]
    traces.append(
        {
            "type": "scatter",
            "x": dates,
            "y": numbers([float(v) for v in series.book_pnl]),
            "name": "book",
            "mode": "lines",
            "line": {"color": "black", "dash": "dot"},
        }
    )
    traces.append(
        {
            "type": "table",
            "domain": {"x": [0.658, 1.0], "y": [0.0, 1.0]},
            "header": {"values": ["strategy", "attributed P&L"]},
            "cells": {
                "values": [
                    [label(s) for s in pnl["strategy"]],
                    [_money(Decimal(v)) for v in pnl["attributed_pnl"]],
                ],
                "align": ["left", "right"],
            },
        }
    )
    figures.append(
        (
            "pnl",
            {
                "data": traces,
                "layout": {
                    "title": {"text": "Attributed P&L per strategy (sums to the book to the cent)"},
                    "xaxis": {"domain": [0.0, 0.558], "anchor": "y"},
                    "yaxis": {"domain": [0.0, 1.0], "anchor": "x"},
                },
            },
        )
    )

    # 3. Allocations over time (stacked capital; cash is what is left of the total).
    alloc = history.allocations.copy()
    alloc["date"] = pd.to_datetime(alloc["date"]).dt.strftime("%Y-%m-%d")
    alloc = alloc[alloc["date"] >= start]
    cap = alloc.pivot(index="date", columns="strategy", values="capital").astype(float)
    fig = allocation_figure(
        list(cap.index),
        [str(c) for c in cap.columns],
        cap.to_numpy(),
        history.total_capital,
        colour,
        "Published capital per strategy (stacked)",
    )
    figures.append(("allocations", fig))

    # 4. The latest 90-session correlation heatmap.
    window = config.correlation.window
    wide = _returns_wide(history, series.bars).iloc[-window:]
    corr = wide.corr(min_periods=window)
    fig = correlation_figure(
        [str(c) for c in corr.columns],
        corr.to_numpy(),
        f"{window}-session correlation of own returns at {series.bars[-1]}",
    )
    figures.append(("correlation", fig))

    # 5. Timeline of flagged pairs and benches.
    flags = flagged_pairs(history, config)
    flags = flags[flags["date"] >= series.bars[0]]
    benched = alloc[alloc["benched"].astype(bool)]
    fig = benches_figure(
        [str(d) for d in flags["date"]],
        [str(p) for p in flags["pair"]],
        list(benched["date"]),
        [str(s) for s in benched["strategy"]],
    )
    figures.append(("benches", fig))

    # 6. Breaker states over time.
    states = alloc.pivot(index="date", columns="strategy", values="breaker_state")
    codes = states.apply(lambda c: c.map(_STATE_CODE)).astype(float)
    fig = breaker_figure(list(codes.index), [str(c) for c in codes.columns], codes.to_numpy())
    figures.append(("breaker", fig))

    # 7. Cumulative netting savings: fees (left axis) and turnover avoided (right axis).
    netting = [
        ("fees saved", series.savings_cum, "y", {}),
        ("fees paid", series.fees_cum, "y", {}),
        ("notional crossed internally", series.crossed_cum, "y2", {"dash": "dot"}),
    ]
    fig = {
        "data": [
            {
                "type": "scatter",
                "x": dates,
                "y": numbers([float(v) for v in values]),
                "name": name,
                "yaxis": axis,
                "line": line,
            }
            for name, values, axis, line in netting
        ],
        "layout": {
            "title": {"text": "Cumulative netting savings"},
            "xaxis": {"domain": [0.0, 0.94]},
            "yaxis": {"title": {"text": "fees ($)"}},
            "yaxis2": {
                "title": {"text": "turnover avoided ($)"},
                "overlaying": "y",
                "side": "right",
                "anchor": "x",
            },
        },
    }
    figures.append(("netting", fig))

    # 8. Exposure by venue.
    fig = {
        "data": [
            {
                "type": "scatter",
                "x": dates,
                "y": numbers(values),
                "name": label(venue),
                "stackgroup": "venue",
                "mode": "lines",
            }
            for venue, values in series.venue_gross.items()
        ],
        "layout": {"title": {"text": "Gross exposure by venue (book positions × reference price)"}},
    }
    figures.append(("venues", fig))

    divergences = reported_vs_attributed(history, series, config.gateway.return_tolerance)
    notes = [divergences_html(divergences, config.gateway.return_tolerance)]
    if history.risk is not None:
        notes.insert(0, risk_html(history.risk))
    return _page(title, series, perf, figures, notes)


def reported_vs_attributed(
    history: LedgerHistory, series: BookSeries, tolerance: float
) -> list[ReturnDivergence]:
    """Compare the strategies' reported returns with their attributed P&L ÷ capital.

    The sessions each strategy traded through the allocator are compared
    (:func:`allocator.returns_check.return_divergences`); those differing by more than
    ``tolerance`` are returned.
    """
    capital: dict[str, dict[str, float]] = {}
    for day, name, amount in zip(
        history.allocations["date"],
        history.allocations["strategy"],
        history.allocations["capital"],
        strict=True,
    ):
        capital.setdefault(str(name), {})[str(day)] = float(amount)
    reported: dict[str, dict[str, float | None]] = {}
    for day, name, value in zip(
        history.returns["date"], history.returns["strategy"], history.returns["return"], strict=True
    ):
        number = float(value)
        reported.setdefault(str(name), {})[str(day)] = None if math.isnan(number) else number
    traded = traded_sessions(
        series.bars, ((f.bar, f.strategy, f.symbol, f.qty) for f in history.virtual_fills)
    )
    return return_divergences(
        sessions=series.bars,
        pnl=series.strategy_pnl,
        traded=traded,
        capital=capital,
        reported=reported,
        tolerance=tolerance,
    )


def risk_html(risk: RiskView) -> str:
    """Render the trading states and the latest risk denials (text escaped)."""
    colour = {"active": "#2ca02c", "reducing": "#ff7f0e", "halted": "#d62728"}
    venues = ", ".join(
        f"{html.escape(v)} <b style='color:{colour.get(s, '#000')}'>{html.escape(s)}</b>"
        for v, s in sorted(risk.venue_states.items())
    )
    keys = ("bar", "intent_id", "strategy", "symbol", "reason", "limit", "value", "detail")
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(d.get(k) or ''))}</td>" for k in keys) + "</tr>"
        for d in risk.denials
    )
    counts = ", ".join(f"{html.escape(k)} {n}" for k, n in sorted(risk.counts.items())) or "none"
    state = risk.trading_state
    header = "".join(f"<th>{k}</th>" for k in keys)
    return (
        f"<section id='risk'><h2>Trading state: <span style='color:{colour.get(state, '#000')}'>"
        f"{html.escape(state)}</span></h2><p>{html.escape(risk.detail)}</p>"
        f"<p>venues: {venues}</p><p>risk denials so far: {counts}</p>"
        f"<table class='k'><tr>{header}</tr>{rows or '<tr><td>no denial</td></tr>'}</table>"
        "</section>"
    )


def divergences_html(divergences: Sequence[ReturnDivergence], tolerance: float) -> str:
    """Render the returns check for the operator: a line when all agree, else a table."""
    if not divergences:
        return (
            "<p>Self-reported returns agree with the attributed P&amp;L ÷ published capital on "
            f"every session traded through the allocator (tolerance {tolerance:g}).</p>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(text)}</td></tr>"
        for name, text in describe(divergences).items()
    )
    return (
        "<h2 style='color:#d62728'>Self-reported returns diverge from the attributed P&amp;L"
        f"</h2><p>|reported − attributed P&amp;L ÷ published capital| &gt; {tolerance:g} on the "
        "sessions below (the <code>returns_match_attribution</code> check fails).</p>"
        f"<table class='k'><tr><th>strategy</th><th>sessions</th></tr>{rows}</table>"
    )


def _page(
    title: str,
    series: BookSeries,
    perf: pd.DataFrame,
    figures: Sequence[tuple[str, Figure]],
    notes: Sequence[str] = (),
) -> str:
    intro = (
        f"<p>{len(series.bars)} bars, {series.bars[0]} to {series.bars[-1]}; "
        f"book P&amp;L {_money(series.book_pnl[-1])}, attributed to the strategies "
        f"{_money(series.attributed_total[-1])}; netting saved "
        f"{_money(series.savings_cum[-1])} in fees.</p>"
    )
    figures_of = ("annual_return", "volatility", "sharpe", "max_drawdown")
    rows = [
        (
            str(r["portfolio"]),
            float(r["final_equity"]),
            Performance(*(float(r[k]) for k in figures_of)),
        )
        for r in perf.to_dict("records")
    ]
    return html_page(title, [intro, *notes, perf_table_html(rows)], figures)
