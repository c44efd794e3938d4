"""The bundled real market history: daily closes of 20 US large caps and the S&P 500 index.

The two files in ``demo/data/sp500/`` are skfolio's S&P 500 sample (BSD-3, see
``NOTICE.md`` and ``LICENSE-skfolio`` there), copied unchanged so that the demo reads real prices
offline and without skfolio installed. Closes are split- and dividend-adjusted as skfolio ships
them, written with three decimals; :meth:`MarketHistory.price_text` gives them back as that exact
text so that the ledger's decimal prices are the file's numbers, not a float's expansion.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from allocator.arrays import FloatArray

__all__ = ["INDEX_NAME", "MarketHistory", "bundled_files", "load_sp500"]

INDEX_NAME = "SP500"
_FOLDER = "data/sp500"
_STOCKS = "sp500_dataset.csv.gz"
_INDEX = "sp500_index.csv.gz"


@dataclass(frozen=True, slots=True)
class MarketHistory:
    """Aligned daily closes: ``closes[t, m]`` of ``symbols[m]`` at ``sessions[t]`` (> 0, no
    gaps) and the index level ``index[t]`` (a signal, not a tradable symbol)."""

    sessions: npt.NDArray[np.datetime64]
    symbols: tuple[str, ...]
    closes: FloatArray
    index: FloatArray

    def window(self, start: str, end: str) -> MarketHistory:
        """The sessions from ``start`` to ``end`` inclusive (ISO dates)."""
        lo = np.datetime64(start, "D")
        hi = np.datetime64(end, "D")
        keep = (self.sessions >= lo) & (self.sessions <= hi)
        return MarketHistory(
            sessions=self.sessions[keep],
            symbols=self.symbols,
            closes=self.closes[keep],
            index=self.index[keep],
        )

    def position(self, day: str) -> int:
        """Index of the first session on or after ``day``; ``ValueError`` past the end."""
        t = int(np.searchsorted(self.sessions, np.datetime64(day, "D")))
        if t >= len(self.sessions):
            raise ValueError(f"{day} is after the last bundled session {self.sessions[-1]}")
        return t

    def price_text(self, t: int, m: int) -> Decimal:
        """The close of ``symbols[m]`` at session ``t`` as the file wrote it (3 decimals)."""
        return Decimal(f"{self.closes[t, m]:.3f}")


def bundled_files() -> tuple[Path, Path]:
    """Paths of the stock and index files inside the installed package."""
    root = resources.files("demo").joinpath(_FOLDER)
    return Path(str(root.joinpath(_STOCKS))), Path(str(root.joinpath(_INDEX)))


def load_sp500() -> MarketHistory:
    """Read both files and align them on their common sessions (1990-01-02 to 2022-12-28)."""
    stocks_path, index_path = bundled_files()
    stocks = pd.read_csv(stocks_path, index_col="Date")
    level = pd.read_csv(index_path, index_col="Date")
    common = stocks.index.intersection(level.index)
    stocks = stocks.loc[common].sort_index()
    level = level.loc[common].sort_index()
    closes = stocks.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(closes)) or np.any(closes <= 0):
        raise ValueError(f"{stocks_path}: closes must be finite and > 0")
    return MarketHistory(
        sessions=np.array(stocks.index.to_numpy(dtype=str), dtype="datetime64[D]"),
        symbols=tuple(str(c) for c in stocks.columns),
        closes=closes,
        index=level[INDEX_NAME].to_numpy(dtype=np.float64),
    )
