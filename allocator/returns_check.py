"""Self-reported returns against what the allocator saw (docs/decisions/0015-strategy-gateway.md).

A strategy reports its own daily returns, and the rules engine sizes it from them; a strategy
that reports smooth, made-up returns would take most of the capital at the next rebalance. So
on every session in which a strategy traded through the allocator (it carried a position held
through the allocator into the session: the session's P&L was made in the allocator's book),
its attributed P&L of the session divided by the
capital published for that session is compared with the return it reported for that date. A
difference beyond ``[gateway] return_tolerance`` is a :class:`ReturnDivergence`; the
``returns_match_attribution`` check on ``strategy_returns`` fails on any, naming the strategy
and the sessions, and the dashboard lists them.

Readings: the session's attributed P&L is the change of the strategy's marked book (cash plus
positions at the bar's reference prices, :func:`allocator.dashboard.book_series`) from the
previous bar to this one; the capital is the latest allocation published strictly before the
session (SPEC §6: published at ``t``, used from ``t + 1``), the one the bar sized it with; a
session with no such capital (or capital 0: benched or halted) or no reported value (missing)
is not compared.

Pure: plain mappings in, a list out; the ledger is read by the callers.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["ReturnDivergence", "describe", "return_divergences", "traded_sessions"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReturnDivergence:
    """One session on which a strategy's reported return and its attributed return differ.

    Attributes
    ----------
    strategy : str
        The strategy's name.
    session : str
        The session (``YYYY-MM-DD``).
    reported : float
        The return the strategy reported for the session, a fraction.
    attributed : float
        Its attributed P&L of the session ÷ its published capital, a fraction.
    pnl : decimal.Decimal
        The attributed P&L of the session, quote currency, signed.
    capital : float
        The capital published for the session, account currency, > 0.
    """

    strategy: str
    session: str
    reported: float
    attributed: float
    pnl: Decimal
    capital: float

    @property
    def difference(self) -> float:
        """``|reported − attributed|``."""
        return abs(self.reported - self.attributed)


def traded_sessions(
    sessions: Sequence[str], fills: Iterable[tuple[str, str, str, Decimal]]
) -> dict[str, set[str]]:
    """Find the sessions each strategy traded through the allocator in.

    Parameters
    ----------
    sessions : sequence of str
        The recorded bars, ascending.
    fills : iterable of (bar, strategy, symbol, qty)
        The virtual fills (``qty`` signed base units).

    Returns
    -------
    dict of str to set of str
        Per strategy: the sessions into which it carried a non-zero position from the previous
        session. The session of a first fill is not one: its book is marked at the price it
        was filled at, while the strategy's own return of that date is of what it held before
        (outside the allocator).
    """
    by_bar: dict[str, list[tuple[str, str, Decimal]]] = {}
    for bar, strategy, symbol, qty in fills:
        by_bar.setdefault(bar, []).append((strategy, symbol, qty))
    held: dict[str, dict[str, Decimal]] = {}
    out: dict[str, set[str]] = {}
    for session in sessions:
        for strategy, positions in held.items():
            if any(q != 0 for q in positions.values()):
                out.setdefault(strategy, set()).add(session)
        for strategy, symbol, qty in by_bar.get(session, ()):
            book = held.setdefault(strategy, {})
            book[symbol] = book.get(symbol, Decimal(0)) + qty
    return out


def return_divergences(
    *,
    sessions: Sequence[str],
    pnl: Mapping[str, Sequence[Decimal]],
    traded: Mapping[str, set[str]],
    capital: Mapping[str, Mapping[str, float]],
    reported: Mapping[str, Mapping[str, float | None]],
    tolerance: float,
) -> list[ReturnDivergence]:
    """List the compared sessions whose reported and attributed returns differ too much.

    A session is compared when the strategy traded in it, reported a value for it and had
    capital > 0 published before it; it differs too much beyond ``tolerance``.

    Parameters
    ----------
    sessions : sequence of str
        The recorded bars (daily, ``YYYY-MM-DD``), ascending.
    pnl : mapping of str to sequence of Decimal
        Per strategy, per session: attributed P&L since the first session (cumulative).
    traded : mapping of str to set of str
        Per strategy: the sessions it traded through the allocator (:func:`traded_sessions`).
    capital : mapping of str to mapping of str to float
        Per strategy: its published capital by publication date (account currency).
    reported : mapping of str to mapping of str to float or None
        Per strategy: its reported return by date (``None``: missing).
    tolerance : float
        The largest accepted ``|reported − attributed|``, >= 0.

    Returns
    -------
    list of ReturnDivergence
        By strategy, then session.

    Raises
    ------
    ValueError
        ``tolerance`` is negative or not finite, or a P&L series is not as long as
        ``sessions``.
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    out: list[ReturnDivergence] = []
    for strategy in sorted(traded):
        series = pnl.get(strategy)
        if series is None:
            continue
        if len(series) != len(sessions):
            raise ValueError(f"{strategy}: {len(series)} P&L values for {len(sessions)} sessions")
        published = sorted(capital.get(strategy, {}).items())
        dates = [d for d, _ in published]
        own = reported.get(strategy, {})
        for i, session in enumerate(sessions):
            if session not in traded[strategy]:
                continue
            value = own.get(session)
            at = bisect.bisect_left(dates, session) - 1  # published strictly before
            if value is None or at < 0 or not math.isfinite(value):
                continue
            cap = published[at][1]
            if not cap > 0:
                continue
            day = series[i] - (series[i - 1] if i else Decimal(0))
            attributed = float(day) / cap
            if abs(value - attributed) > tolerance:
                out.append(
                    ReturnDivergence(
                        strategy=strategy,
                        session=session,
                        reported=value,
                        attributed=attributed,
                        pnl=day,
                        capital=cap,
                    )
                )
    return out


def describe(divergences: Sequence[ReturnDivergence], limit: int = 5) -> dict[str, str]:
    """Describe each strategy's divergent sessions in one line (the first ``limit`` listed)."""
    by: dict[str, list[ReturnDivergence]] = {}
    for d in divergences:
        by.setdefault(d.strategy, []).append(d)
    out = {}
    for strategy, items in by.items():
        shown = ", ".join(
            f"{d.session} (reported {d.reported:.4%}, attributed {d.attributed:.4%})"
            for d in items[:limit]
        )
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        out[strategy] = f"{len(items)} session(s): {shown}{more}"
    return out
