"""The part every venue's Dagster resource shares: a lazily built client, closed after the run,
and the :class:`allocator.execution.orders.Broker` methods delegated to it.

A venue's resource declares its configuration fields and :meth:`_build`; nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from allocator.execution.orders import BrokerOrder, OrderRequest

__all__ = ["BrokerResource"]


class BrokerResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Base of the venue resources; implements :class:`allocator.execution.orders.Broker`."""

    _broker: Any = PrivateAttr(default=None)

    def _build(self) -> Any:
        """Construct the venue's client from this resource's fields."""
        raise NotImplementedError

    def broker(self) -> Any:
        if self._broker is None:
            self._broker = self._build()
        return self._broker

    @property
    def name(self) -> str:
        return str(self.broker().name)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._broker is not None:
            self._broker.close()
            self._broker = None

    def submit(self, request: OrderRequest) -> BrokerOrder:
        order: BrokerOrder = self.broker().submit(request)
        return order

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        found: BrokerOrder | None = self.broker().lookup(symbol, client_order_id)
        return found

    def open_orders(self) -> Sequence[BrokerOrder]:
        orders: Sequence[BrokerOrder] = self.broker().open_orders()
        return orders

    def positions(self) -> Mapping[str, Decimal]:
        held: Mapping[str, Decimal] = self.broker().positions()
        return held

    def cancel(self, symbol: str, client_order_id: str) -> None:
        self.broker().cancel(symbol, client_order_id)
