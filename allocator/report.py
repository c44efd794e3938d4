"""Writers of the replay contract's files (SPEC §11).

Dates ``YYYY-MM-DD``; booleans ``true``/``false``; an undefined number is an empty field;
floats at full round-trip precision (Python's ``repr``); capital is not rounded.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np

from allocator.breaker import BreakerState
from allocator.replay import Event, ReplayResult
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
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(EVENT_COLUMNS)
        for e in events:
            w.writerow((str(e.date), e.kind, e.strategy, e.detail))


class PairsWriter:
    """Streams ``pairs.csv`` one session at a time (never holds sessions × pairs)."""

    def __init__(self, fh: IO[str], strategies: tuple[str, ...]) -> None:
        self._w = csv.writer(fh, lineterminator="\n")
        self._w.writerow(PAIR_COLUMNS)
        a, b = np.triu_indices(len(strategies), k=1)
        self._names = [(strategies[i], strategies[j]) for i, j in zip(a, b, strict=True)]

    def __call__(
        self, date: np.datetime64, stream: PairCorrelationStream, persistence: int
    ) -> None:
        day = str(date)[:10]
        corr = stream.corr.tolist()
        breach = stream.breach_run.tolist()
        calm = stream.calm_run.tolist()
        self._w.writerows(
            (day, a, b, _num(corr[p]), breach[p], calm[p], _bool(breach[p] >= persistence))
            for p, (a, b) in enumerate(self._names)
        )


def format_table(result: ReplayResult) -> str:
    """The final session's allocation as an aligned text table (for the terminal)."""
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
