"""What the allocator's decisions do for the book: the daily book return and its summary.

The allocation published at the close of session ``t`` (``final_weight[t]``, fractions of
``total_capital``) is held through session ``t + 1``, so

``book[t+1] = Σ_j w[t, j] · r[t+1, j] + (1 − Σ_j w[t, j]) · cash − cost · turnover[t]``

where ``cash`` is the daily rate of an annual ``cash_rate`` (``(1 + rate)^(1/252) − 1``;
default 0%: freed and unallocated capital earns nothing), ``turnover[t] = Σ_j |w[t, j] −
w[t−1, j]|`` (``w[−1] = 0``: the first allocation is bought) and ``cost`` is charged per unit
of turnover (0.001 = 10 bp of the capital moved). A strategy with a weight and a missing
return at ``t + 1`` contributes 0 that session. The first session has no allocation before it
and no book return: the book starts at the close of the first session.

Readings taken here (documented in ``docs/decisions/0014-research-sweeps.md``): the book is
rebalanced to the published weights every session (a strategy's capital is its budget, so
drift between sessions is the strategy's own business); turnover is that of the published
weights; Sharpe is against a zero risk-free rate, whatever the cash rate; ``turnover`` in the
summary is the annualised sum of ``turnover[t]``; a breaker trip is a move to a more severe
state (``normal->half``, ``normal->halted``, ``half->halted``).

The summary's return figures are :func:`allocator.figures.performance` of the book's equity
curve, the same function the dashboard uses for its own comparison table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from allocator.arrays import FloatArray
from allocator.replay import Event, ReplayResult
from allocator.states import BreakerState

__all__ = [
    "SUMMARY_KEYS",
    "Book",
    "book_of",
    "book_returns",
    "event_counts",
    "summarize",
]

SUMMARY_KEYS = (
    "cagr",
    "vol",
    "sharpe",
    "max_drawdown",
    "turnover",
    "benches",
    "readmits",
    "breaker_trips",
)


@dataclass(frozen=True, slots=True)
class Book:
    """The daily book of a replay, from its second session on.

    Attributes
    ----------
    dates : numpy.ndarray of datetime64[D], shape (T - 1,)
        The sessions ``t + 1`` the returns belong to.
    returns : numpy.ndarray of float64, shape (T - 1,)
        The book's simple return of each session, net of cost.
    invested : numpy.ndarray of float64, shape (T - 1,)
        ``Σ_j w[t, j]``: the fraction of capital allocated to strategies during the session.
    turnover : numpy.ndarray of float64, shape (T - 1,)
        ``Σ_j |w[t, j] − w[t−1, j]|`` of the allocation held during the session.
    cost : numpy.ndarray of float64, shape (T - 1,)
        ``cost × turnover``, a fraction of capital.
    equity : numpy.ndarray of float64, shape (T - 1,)
        Growth of 1 invested at the close of the first session.
    """

    dates: npt.NDArray[np.datetime64]
    returns: FloatArray
    invested: FloatArray
    turnover: FloatArray
    cost: FloatArray
    equity: FloatArray


def book_returns(
    weights: FloatArray,
    returns: FloatArray,
    *,
    cash_rate: float = 0.0,
    cost: float = 0.0,
    annualization: int = 252,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Compute the book's daily return from the published weights and the strategies' returns.

    Parameters
    ----------
    weights : numpy.ndarray of float64, shape (T, n)
        ``final_weight``: fractions of capital published at the close of each session.
    returns : numpy.ndarray of float64, shape (T, n)
        The strategies' daily simple returns, NaN where missing (counted as 0 when held).
    cash_rate : float, default 0.0
        Annual simple rate earned by the capital not allocated, in (-1, 1].
    cost : float, default 0.0
        Cost per unit of turnover, a fraction of the capital moved, in [0, 1].
    annualization : int, default 252
        Sessions per year, to turn ``cash_rate`` into a daily rate.

    Returns
    -------
    book : numpy.ndarray of float64, shape (T - 1,)
        The book's return of sessions 1..T-1.
    turnover : numpy.ndarray of float64, shape (T - 1,)
        The turnover of the allocation held in each of those sessions.
    invested : numpy.ndarray of float64, shape (T - 1,)
        The fraction allocated in each of those sessions.

    Raises
    ------
    ValueError
        Shapes differ, or ``cash_rate`` / ``cost`` out of range.
    """
    w = np.asarray(weights, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    if w.shape != r.shape:
        raise ValueError(f"weights {w.shape} and returns {r.shape} differ in shape")
    if not (math.isfinite(cash_rate) and -1.0 < cash_rate <= 1.0):
        raise ValueError(f"cash rate must lie in (-1, 1], got {cash_rate!r}")
    if not (math.isfinite(cost) and 0.0 <= cost <= 1.0):
        raise ValueError(f"cost per unit of turnover must lie in [0, 1], got {cost!r}")
    daily_cash = (1.0 + cash_rate) ** (1.0 / annualization) - 1.0
    held = w[:-1]
    previous = np.vstack([np.zeros((1, w.shape[1])), w[:-2]]) if len(w) > 1 else held
    turnover = np.abs(held - previous).sum(axis=1)
    invested = held.sum(axis=1)
    gain = (held * np.nan_to_num(r[1:], nan=0.0)).sum(axis=1)
    book = gain + (1.0 - invested) * daily_cash - cost * turnover
    return book, turnover, invested


def book_of(
    result: ReplayResult,
    returns: FloatArray,
    *,
    cash_rate: float = 0.0,
    cost: float = 0.0,
    annualization: int = 252,
) -> Book:
    """Return the :class:`Book` of ``result`` over the panel's ``returns`` (see the module)."""
    book, turnover, invested = book_returns(
        result.final_weight, returns, cash_rate=cash_rate, cost=cost, annualization=annualization
    )
    return Book(
        dates=np.asarray(result.sessions[1:]).astype("datetime64[D]"),
        returns=book,
        invested=invested,
        turnover=turnover,
        cost=cost * turnover,
        equity=np.cumprod(1.0 + book, dtype=np.float64),
    )


def event_counts(events: list[Event]) -> dict[str, int]:
    """Count benches, re-admissions and breaker trips (moves to a more severe state)."""
    rank = {state.label: int(state) for state in BreakerState}
    trips = 0
    for e in events:
        if e.kind == "breaker":
            old, _, new = e.detail.partition("->")
            trips += rank[new] > rank[old]
    return {
        "benches": sum(e.kind == "bench" for e in events),
        "readmits": sum(e.kind == "readmit" for e in events),
        "breaker_trips": trips,
    }


def summarize(
    book: Book, events: list[Event] | Mapping[str, int], annualization: int = 252
) -> dict[str, float]:
    """Return ``summary.json``: the keys of :data:`SUMMARY_KEYS`.

    ``cagr``, ``vol`` (annualised), ``sharpe`` (annualised, risk-free 0; NaN when the book
    never moves) and ``max_drawdown`` (<= 0) are
    :func:`allocator.figures.performance` of the equity curve starting at 1 at the close of
    the first session; ``turnover`` is the sum of the daily turnover per year; the counts are
    :func:`event_counts` of ``events``, or ``events`` itself when it is already the counts
    (:func:`allocator.replay.decide` with ``events=False``).
    """
    from allocator.figures import performance

    equity = np.concatenate([[1.0], book.equity])
    out: dict[str, float] = {}
    if len(equity) >= 3 and float(np.std(book.returns)) > 0.0:
        perf = performance(equity, annualization)
        out.update(
            cagr=perf.annual_return,
            vol=perf.volatility,
            sharpe=perf.sharpe,
            max_drawdown=perf.max_drawdown,
        )
    else:  # a book that never moved (nothing allocated yet): no volatility, no Sharpe
        growth = float(equity[-1])
        years = max(len(book.returns), 1) / annualization
        out.update(
            cagr=growth ** (1.0 / years) - 1.0,
            vol=0.0,
            sharpe=math.nan,
            max_drawdown=float(np.min(equity / np.maximum.accumulate(equity) - 1.0)),
        )
    years = len(book.returns) / annualization
    out["turnover"] = float(book.turnover.sum() / years) if years > 0 else 0.0
    out.update(event_counts(events) if isinstance(events, list) else dict(events))
    return {k: out[k] for k in SUMMARY_KEYS}
