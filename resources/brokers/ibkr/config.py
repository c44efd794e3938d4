"""Interactive Brokers as a Dagster resource: connection settings plus the Broker methods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import dagster as dg
from pydantic import Field, PrivateAttr

from allocator.orders import BrokerOrder, OrderRequest
from resources.brokers.common import TradingMode
from resources.brokers.ibkr.client import IbkrBroker

__all__ = ["IbkrBrokerResource"]


class IbkrBrokerResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """TWS / IB Gateway (futures, forex, equities); implements :class:`Broker`."""

    host: str = Field(default="127.0.0.1", description="IB_HOST")
    port: int = Field(default=7497, description="IB_PORT (7497 TWS paper, 4002 gateway paper)")
    client_id: int = Field(default=1, description="IB_CLIENT_ID; keep it fixed")
    mode: TradingMode = Field(default="paper")
    timeout_s: float = Field(default=10.0, gt=0)
    account: str = Field(default="", description="Account id; default: the first managed one.")

    _broker: IbkrBroker | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return IbkrBroker.name

    def broker(self) -> IbkrBroker:
        if self._broker is None:
            self._broker = IbkrBroker(
                host=self.host,
                port=self.port,
                client_id=self.client_id,
                mode=self.mode,
                timeout_s=self.timeout_s,
                account=self.account,
            )
        return self._broker

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._broker is not None:
            self._broker.close()
            self._broker = None

    def submit(self, request: OrderRequest) -> BrokerOrder:
        return self.broker().submit(request)

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        return self.broker().lookup(symbol, client_order_id)

    def open_orders(self) -> Sequence[BrokerOrder]:
        return self.broker().open_orders()

    def positions(self) -> Mapping[str, Decimal]:
        return self.broker().positions()

    def cancel(self, symbol: str, client_order_id: str) -> None:
        self.broker().cancel(symbol, client_order_id)
