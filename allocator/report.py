"""Writers of the replay contract's files (SPEC §11), the book's files and the replay report.

``book.csv``, ``summary.json`` (:mod:`allocator.book`) and ``report.html`` (drawn with the
dashboard's figure functions, :mod:`allocator.figures`, imported when a page is built).

Dates ``YYYY-MM-DD``; booleans ``true``/``false``; an undefined number is an empty field;
floats at full round-trip precision (Python's ``repr``); capital is not rounded. The
``allocator replay`` command (``cli/replay.py``) writes the three files into a staging folder
and moves them in only when all are complete.

Why ``pairs.csv`` has a streaming writer (:class:`PairsWriter`, the replay's ``on_pairs`` hook)
while the other two files are written from a finished :class:`~allocator.replay.ReplayResult`:
it grows as sessions × strategies², so it is written one session at a time and never held in
memory (``--no-pairs`` skips it), whereas the allocations grow only as sessions × strategies.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from allocator.arrays import FloatArray
from allocator.book import Book, book_of
from allocator.config import AllocatorConfig
from allocator.data import ReturnsPanel
from allocator.replay import Event, ReplayResult
from allocator.sizing import SizingSchedule, inverse_vol_weights
from allocator.states import BreakerState
from allocator.stats import PairCorrelationStream

__all__ = [
    "ALLOCATION_COLUMNS",
    "BOOK_COLUMNS",
    "EVENT_COLUMNS",
    "PAIR_COLUMNS",
    "PairsWriter",
    "format_table",
    "peer_books",
    "replay_report",
    "window_correlation",
    "write_allocations",
    "write_book",
    "write_events",
    "write_summary",
]

ALLOCATION_COLUMNS = (
    "date",
    "strategy",
    "vol_60d",
    "sharpe_90d",
    "mtd_return",
    "breaker_state",
    "multiplier",
    "benched",
    "base_weight",
    "final_weight",
    "capital",
)
PAIR_COLUMNS = ("date", "strategy_a", "strategy_b", "corr_90d", "breach_run", "calm_run", "flagged")
EVENT_COLUMNS = ("date", "kind", "strategy", "detail")
_STATE_LABELS = tuple(BreakerState(code).label for code in range(len(BreakerState)))


def _num(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def write_allocations(result: ReplayResult, path: Path) -> None:
    """Write ``allocations.csv``: one row per (session, strategy), ``ALLOCATION_COLUMNS``.

    Rows go session by session, strategies in name order within a session; ``breaker_state``
    is written as its label (``normal``, ``half``, ``halted``).

    Parameters
    ----------
    result : ReplayResult
        The decisions to write.
    path : pathlib.Path
        The file to create or overwrite (UTF-8, LF line ends).
    """
    n = len(result.strategies)
    dates = [str(d) for d in result.sessions.astype("datetime64[D]") for _ in range(n)]
    names = list(result.strategies) * len(result.sessions)
    states = [_STATE_LABELS[s] for s in result.breaker_state.ravel().tolist()]
    benched = ["true" if b else "false" for b in result.benched.ravel().tolist()]
    vol, sharpe, mtd, mult, base, final, capital = (
        _num_texts(a)
        for a in (
            result.vol,
            result.sharpe,
            result.mtd,
            result.multiplier,
            result.base_weight,
            result.final_weight,
            result.capital,
        )
    )
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(ALLOCATION_COLUMNS)
        w.writerows(
            zip(
                dates,
                names,
                vol,
                sharpe,
                mtd,
                states,
                mult,
                benched,
                base,
                final,
                capital,
                strict=True,
            )
        )


def _num_texts(values: FloatArray) -> list[str]:
    """:func:`_num` of every value, row-major.

    Each distinct value is formatted once: ``repr`` of a float costs about a microsecond, and
    weights, capital and multipliers repeat from one session to the next until a rebalance.
    Values are told apart by their bits, so ``-0.0`` keeps its sign.
    """
    flat = np.ascontiguousarray(values, dtype=np.float64).ravel()
    bits, where = np.unique(flat.view(np.int64), return_inverse=True)
    texts = ["" if v != v else repr(v) for v in bits.view(np.float64).tolist()]
    return [texts[i] for i in where.tolist()]


def write_events(events: Iterable[Event], path: Path) -> None:
    """Write ``events.csv`` (columns ``EVENT_COLUMNS``), one row per event in the given order.

    Parameters
    ----------
    events : iterable of Event
        The events, normally :attr:`ReplayResult.events <allocator.replay.ReplayResult>`.
    path : pathlib.Path
        The file to create or overwrite (UTF-8, LF line ends).
    """
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(EVENT_COLUMNS)
        for e in events:
            w.writerow((str(e.date), e.kind, e.strategy, e.detail))


class PairsWriter:
    """Streams ``pairs.csv`` one session at a time (never holds sessions × pairs).

    Pass an instance as :func:`~allocator.replay.replay`'s ``on_pairs``; the header is written
    when it is created.

    Parameters
    ----------
    fh : text file
        Open for writing, preferably with ``newline=""``; the caller closes it.
    strategies : tuple of str
        Strategy names in code-point order, as in the replayed panel.
    """

    def __init__(self, fh: IO[str], strategies: tuple[str, ...]) -> None:
        self._w = csv.writer(fh, lineterminator="\n")
        self._w.writerow(PAIR_COLUMNS)
        a, b = np.triu_indices(len(strategies), k=1)
        self._names = [(strategies[i], strategies[j]) for i, j in zip(a, b, strict=True)]

    def __call__(
        self, date: np.datetime64, stream: PairCorrelationStream, persistence: int
    ) -> None:
        """Write one row per pair for session ``date`` (columns ``PAIR_COLUMNS``).

        Parameters
        ----------
        date : numpy.datetime64
            The session.
        stream : PairCorrelationStream
            The pair stream after that session.
        persistence : int
            ``flagged`` is written as ``breach_run >= persistence``.
        """
        day = str(date)[:10]
        corr = stream.corr.tolist()
        breach = stream.breach_run.tolist()
        calm = stream.calm_run.tolist()
        self._w.writerows(
            (day, a, b, _num(corr[p]), breach[p], calm[p], _bool(breach[p] >= persistence))
            for p, (a, b) in enumerate(self._names)
        )


def format_table(result: ReplayResult) -> str:
    """Format the final session's allocation as an aligned text table (for the terminal).

    Vol and weights are shown as percentages, capital to the cent with a ``deployed`` total;
    an undefined vol or Sharpe is left blank.
    """
    last = result.last()
    date = str(result.sessions[-1])
    header = f"{'strategy':<16}{'vol_60d':>9}{'sharpe':>8}{'breaker':>9}{'benched':>9}"
    header += f"{'base_w':>9}{'final_w':>9}{'capital':>14}"
    lines = [f"Allocation published at the close of {date}", header, "-" * len(header)]
    total = 0.0
    for name, row in last.items():
        vol = float(row["vol_60d"])
        sharpe = float(row["sharpe_90d"])
        capital = float(row["capital"])
        total += capital
        lines.append(
            f"{name:<16}"
            f"{'' if math.isnan(vol) else f'{vol:.2%}':>9}"
            f"{'' if math.isnan(sharpe) else f'{sharpe:.2f}':>8}"
            f"{row['breaker_state']!s:>9}"
            f"{'yes' if row['benched'] else 'no':>9}"
            f"{float(row['base_weight']):>9.2%}"
            f"{float(row['final_weight']):>9.2%}"
            f"{capital:>14,.2f}"
        )
    lines.append("-" * len(header))
    lines.append(f"{'deployed':<16}{'':>61}{total:>14,.2f}")
    return "\n".join(lines)


BOOK_COLUMNS = ("date", "book_return", "equity", "invested", "cash", "turnover", "cost")


def write_book(book: Book, path: Path) -> None:
    """Write ``book.csv``: one row per session from the second, columns ``BOOK_COLUMNS``.

    ``book_return`` is the session's simple return of the book (net of cost), ``equity`` the
    growth of 1 from the close of the first session, ``invested`` and ``cash`` the fractions
    of capital allocated and left in cash during the session, ``turnover`` the allocation's
    turnover and ``cost`` what it cost (a fraction of capital); see :mod:`allocator.book`.
    """
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(BOOK_COLUMNS)
        for d, r, e, inv, to, c in zip(
            book.dates.astype(str).tolist(),
            book.returns.tolist(),
            book.equity.tolist(),
            book.invested.tolist(),
            book.turnover.tolist(),
            book.cost.tolist(),
            strict=True,
        ):
            w.writerow((d, _num(r), _num(e), _num(inv), _num(1.0 - inv), _num(to), _num(c)))


def write_summary(summary: dict[str, float], path: Path) -> None:
    """Write ``summary.json`` (keys of :data:`allocator.book.SUMMARY_KEYS`; NaN as ``null``)."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    path.write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")


def peer_books(
    panel: ReturnsPanel,
    result: ReplayResult,
    config: AllocatorConfig,
    *,
    cash_rate: float = 0.0,
    cost: float = 0.0,
) -> dict[str, Book]:
    """Return the books the report compares with: equal weight, inverse vol, best single.

    * equal weight: ``1/k`` in each of the ``k`` strategies that exist at ``t``;
    * inverse vol alone: SPEC §4's inverse-vol weights on the same schedule
      (``sizing.rebalance_every`` from the first session with a defined vol), with no bench
      and no breaker (the part of the engine a portfolio library would do);
    * best single: all in the strategy whose own returns have the highest Sharpe over the
      replay (a missing return counts as 0).

    Each goes through :func:`allocator.book.book_of` with the same cash rate and cost.
    """
    values = panel.values
    exists = np.cumsum(~np.isnan(values), axis=0) > 0
    k = exists.sum(axis=1, keepdims=True)
    ew = np.divide(exists, k, out=np.zeros_like(values), where=k > 0)
    schedule = SizingSchedule(every=config.sizing.rebalance_every)
    iv = np.zeros_like(values)
    held = np.zeros(values.shape[1])
    for t in range(values.shape[0]):
        eligible = np.isfinite(result.vol[t]) & (result.vol[t] > 0)
        if schedule.reason(t, any_eligible=bool(eligible.any()), bench_changed=False):
            held = inverse_vol_weights(result.vol[t], eligible)
        iv[t] = held
    own = np.nan_to_num(values, nan=0.0)
    sd = own.std(axis=0, ddof=1)
    sharpe = np.divide(own.mean(axis=0), sd, out=np.full(sd.shape, -np.inf), where=sd > 0)
    best = int(np.argmax(sharpe))
    single = np.zeros_like(values)
    single[:, best] = 1.0
    ann = config.sizing.annualization

    def book(weights: FloatArray) -> Book:
        shadow = ReplayResult(
            sessions=result.sessions,
            strategies=result.strategies,
            vol=result.vol,
            sharpe=result.sharpe,
            mtd=result.mtd,
            breaker_state=result.breaker_state,
            multiplier=result.multiplier,
            benched=result.benched,
            base_weight=weights,
            final_weight=weights,
            capital=weights,
        )
        return book_of(shadow, values, cash_rate=cash_rate, cost=cost, annualization=ann)

    return {
        "equal weight": book(ew),
        "inverse vol alone (no bench, no breaker)": book(iv),
        f"best single ({result.strategies[best]})": book(single),
    }


def replay_report(
    panel: ReturnsPanel,
    result: ReplayResult,
    book: Book,
    summary: dict[str, float],
    config: AllocatorConfig,
    *,
    flags: Sequence[tuple[str, str]] | None = None,
    cash_rate: float = 0.0,
    cost: float = 0.0,
) -> str:
    """Build ``report.html``: what the allocator did for the book, one self-contained page.

    The book against equal weight, inverse vol alone and the best single strategy; the
    published weights over time; benches (and the flagged pairs, when ``flags`` has them) and
    breaker states; the correlation heatmap at the last session. Drawn with the dashboard's
    figure functions (:mod:`allocator.figures`).

    Parameters
    ----------
    panel, result : ReturnsPanel, ReplayResult
        The replayed returns and the decisions.
    book, summary : Book, dict
        :func:`allocator.book.book_of` of ``result`` and its :func:`~allocator.book.summarize`.
    config : AllocatorConfig
        The rules' parameters (the correlation window, total capital for the table).
    flags : sequence of (str, str), optional
        Flagged pairs, ``(date, "a / b")`` (date ``YYYY-MM-DD``); none drawn when omitted.
    cash_rate, cost : float
        As for the book, applied to the peers too.

    Returns
    -------
    str
        The HTML page (Plotly's JavaScript inlined: it works offline).
    """
    from allocator import figures as fg

    capital = float(config.allocation.total_capital) or 1.0
    ann = config.sizing.annualization
    books = {"book": book, **peer_books(panel, result, config, cash_rate=cash_rate, cost=cost)}
    x = [str(result.sessions[0]), *np.asarray(book.dates).astype("datetime64[D]").astype(str)]
    curves = {name: capital * np.concatenate([[1.0], b.equity]) for name, b in books.items()}
    perf = [(name, float(c[-1]), fg.performance(c, ann)) for name, c in curves.items()]
    names = list(result.strategies)
    dates = np.asarray(result.sessions).astype("datetime64[D]").astype(str).tolist()
    t_idx, j_idx = np.nonzero(result.benched)
    window = config.correlation.window
    figures = [
        (
            "equity",
            fg.equity_figure(
                x, curves, "Book vs equal weight, inverse vol alone and the best single strategy"
            ),
        ),
        (
            "weights",
            fg.allocation_figure(
                dates,
                names,
                result.final_weight,
                1.0,
                fg.palette(names),
                "Published final weights (stacked)",
            ),
        ),
        (
            "benches",
            fg.benches_figure(
                [d for d, _ in flags or ()],
                [p for _, p in flags or ()],
                [dates[t] for t in t_idx.tolist()],
                [names[j] for j in j_idx.tolist()],
            ),
        ),
        ("breaker", fg.breaker_figure(dates, names, result.breaker_state.astype(np.float64))),
        (
            "correlation",
            fg.correlation_figure(
                names,
                window_correlation(panel.values[-window:]),
                f"{window}-session correlation of own returns at {result.sessions[-1]}",
            ),
        ),
    ]
    shown = ", ".join(
        f"{k} {summary[k]:.4g}" if isinstance(summary[k], float) else f"{k} {summary[k]}"
        for k in summary
    )
    intro = [
        f"<p>{len(result.sessions)} sessions, {result.sessions[0]} to {result.sessions[-1]}, "
        f"{len(names)} strategies; weights published at the close of a session are held "
        f"through the next; cash earns {cash_rate:.2%} a year; cost {cost:g} per unit of "
        "turnover.</p>",
        f"<p>summary.json: {html.escape(shown)}</p>",
        fg.perf_table_html(perf),
    ]
    if flags is None:
        intro.append("<p>Flagged pairs are not drawn: the replay ran with --no-pairs.</p>")
    return fg.html_page("Allocator replay report", intro, figures)


def window_correlation(values: FloatArray) -> FloatArray:
    """Pearson correlation of the columns of ``values`` over all its rows.

    NaN for a pair where either column has a missing value in the window or does not move,
    as pandas' ``DataFrame.corr(min_periods=len(values))`` gives it.
    """
    n = values.shape[1]
    out = np.full((n, n), np.nan)
    complete = np.flatnonzero(np.isfinite(values).all(axis=0))
    if values.shape[0] >= 2 and complete.size:
        block = values[:, complete]
        centred = block - block.mean(axis=0)
        scale = np.sqrt((centred * centred).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = (centred.T @ centred) / np.outer(scale, scale)
        corr[:, scale == 0] = np.nan
        corr[scale == 0, :] = np.nan
        out[np.ix_(complete, complete)] = np.clip(corr, -1.0, 1.0)
    return out
