"""Writers of the replay contract's files (SPEC §11).

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
import math
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np

from allocator.replay import Event, ReplayResult
from allocator.states import BreakerState
from allocator.stats import PairCorrelationStream

__all__ = [
    "ALLOCATION_COLUMNS",
    "EVENT_COLUMNS",
    "PAIR_COLUMNS",
    "PairsWriter",
    "format_table",
    "write_allocations",
    "write_events",
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
    dates = [str(d) for d in result.sessions.astype("datetime64[D]")]
    cols = (
        result.vol.tolist(),
        result.sharpe.tolist(),
        result.mtd.tolist(),
        result.breaker_state.tolist(),
        result.multiplier.tolist(),
        result.benched.tolist(),
        result.base_weight.tolist(),
        result.final_weight.tolist(),
        result.capital.tolist(),
    )
    vol, sharpe, mtd, state, mult, benched, base, final, capital = cols
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(ALLOCATION_COLUMNS)
        for t, date in enumerate(dates):
            for j, name in enumerate(result.strategies):
                w.writerow(
                    (
                        date,
                        name,
                        _num(vol[t][j]),
                        _num(sharpe[t][j]),
                        _num(mtd[t][j]),
                        _STATE_LABELS[state[t][j]],
                        _num(mult[t][j]),
                        _bool(benched[t][j]),
                        _num(base[t][j]),
                        _num(final[t][j]),
                        _num(capital[t][j]),
                    )
                )


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
