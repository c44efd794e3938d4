"""What a fake venue holds, in one shape for every fake: its orders and its positions.

Each fake's ``order_book()`` lists every order it ever accepted as a :class:`HeldOrder` (the
venue's own symbol, e.g. ``BTCUSDT`` or ``ESM5``, and its own status text; the side as
``buy``/``sell``; the ids of the executions it reported), and ``holdings()`` maps the venue's
symbol to the non-zero position it holds: what a test compares with the ledger, reading the
venue's state directly rather than through the adapter under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["HeldOrder"]


@dataclass(frozen=True, kw_only=True)
class HeldOrder:
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    filled: Decimal
    status: str
    fill_ids: tuple[str, ...]
