"""Netting (SPEC §7): a bar's accepted lots summed into one net order per symbol.

Per strategy and symbol the accepted lots sum to a *take*; per symbol the takes sum to the net
order, one order when the net is not zero.

``buy`` (B) is Σ positive takes, ``sell`` (S) Σ |negative takes|; ``net = B − S`` (lots,
signed, + buy); ``crossed = min(B, S)`` is matched internally.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocator.arrays import IntArray
from allocator.execution.book import BarBook

__all__ = ["Netting", "net_takes"]


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Netting:
    """``take`` per slot (lots, signed); ``buy``, ``sell``, ``net`` per symbol (lots)."""

    take: IntArray
    buy: IntArray
    sell: IntArray

    @property
    def net(self) -> IntArray:
        """Net order per symbol: ``buy - sell`` (lots, signed, + buy)."""
        return self.buy - self.sell

    @property
    def crossed(self) -> IntArray:
        """Lots matched internally per symbol: ``min(buy, sell)`` (>= 0)."""
        return np.minimum(self.buy, self.sell)


def net_takes(book: BarBook, accepted: IntArray) -> Netting:
    """Sum accepted lots into takes per slot, then into B and S per symbol."""
    take = np.zeros(len(book.slot_sym), dtype=np.int64)
    np.add.at(take, book.i_slot, accepted)
    n_sym = len(book.symbols)
    buy = np.zeros(n_sym, dtype=np.int64)
    sell = np.zeros(n_sym, dtype=np.int64)
    long = take > 0
    np.add.at(buy, book.slot_sym[long], take[long])
    short = take < 0
    np.add.at(sell, book.slot_sym[short], -take[short])
    return Netting(take=take, buy=buy, sell=sell)
