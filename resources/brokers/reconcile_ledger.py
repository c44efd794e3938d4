"""What the ledger expects at one venue, for :func:`resources.brokers.reconcile.reconcile`.

The ledger holds virtual positions per strategy and an order journal with each order's venue.
A venue's expected position in a symbol is the sum of the strategies' virtual positions in the
symbols the journal routed to that venue; its expected open orders are the journal's
``submitted``/``partially_filled`` orders there. Orders the journal has as ``pending_submit``
or ``unknown`` may or may not be open: they are passed on as uncertain, to be resolved by a
lookup, not counted as differences. The ledger is opened (and created) on demand at
``ALLOCATOR_LEDGER_URL`` or the ledger's default URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from allocator.orders import OrderState, Venue
from resources.brokers.reconcile import ExpectedOrder

__all__ = ["LedgerExpectation", "ledger_expectation"]

_OPEN = {OrderState.SUBMITTED.value, OrderState.PARTIALLY_FILLED.value}
_UNCERTAIN = {OrderState.PENDING_SUBMIT.value, OrderState.UNKNOWN.value}


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerExpectation:
    positions: Mapping[str, Decimal]
    open_orders: tuple[ExpectedOrder, ...]
    uncertain: frozenset[str]
    source: str


def ledger_expectation(venue: Venue | str, url: str | None = None) -> LedgerExpectation:
    from resources.ledger import Ledger, default_url

    venue = Venue(venue)
    url = url or os.environ.get("ALLOCATOR_LEDGER_URL") or default_url()
    ledger = Ledger(url)
    try:
        journal = ledger.orders()
        virtual = ledger.positions()
    finally:
        ledger.close()
    symbols = {str(o["symbol"]) for o in journal if o["venue"] == venue.value}
    positions: dict[str, Decimal] = {}
    for (_strategy, symbol), qty in virtual.items():
        if symbol in symbols:
            positions[symbol] = positions.get(symbol, Decimal(0)) + qty
    open_orders = tuple(
        ExpectedOrder(
            client_order_id=str(o["client_order_id"]),
            symbol=str(o["symbol"]),
            side=str(o["side"]),
            qty=o["qty"],
            filled_qty=o["filled_qty"],
        )
        for o in journal
        if o["venue"] == venue.value and o["state"] in _OPEN
    )
    uncertain = frozenset(
        str(o["client_order_id"])
        for o in journal
        if o["venue"] == venue.value and o["state"] in _UNCERTAIN
    )
    source = url.split("://", 1)[0] + "://…" if "@" in url else url
    return LedgerExpectation(
        positions=positions, open_orders=open_orders, uncertain=uncertain, source=source
    )
