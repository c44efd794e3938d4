"""The Alpaca broker as a Dagster resource: configuration plus the :class:`Broker` methods.

Credentials come from the environment (``dg.EnvVar("ALPACA_API_KEY")``); they are never part
of an order, a log line or metadata. ``mode="paper"`` is the default; ``"live"`` needs the live
URL (SPEC §8 live-mode guard).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import dagster as dg
from pydantic import Field, PrivateAttr

from allocator.orders import BrokerOrder, OrderRequest
from resources.brokers.alpaca.client import AlpacaBroker
from resources.brokers.common import TradingMode

__all__ = ["AlpacaBrokerResource"]


class AlpacaBrokerResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Alpaca trading API (equities, ETFs); implements :class:`allocator.orders.Broker`."""

    api_key: str = Field(description="Alpaca key id; pass dg.EnvVar('ALPACA_API_KEY').")
    secret_key: str = Field(description="Alpaca secret; pass dg.EnvVar('ALPACA_SECRET_KEY').")
    mode: TradingMode = Field(default="paper", description="'paper' (default) or 'live'.")
    base_url: str | None = Field(default=None, description="Override, e.g. ALPACA_BASE_URL.")
    timeout_s: float = Field(default=10.0, gt=0, description="Timeout of every request.")
    requests_per_minute: int = Field(default=200, ge=1)

    _broker: AlpacaBroker | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return AlpacaBroker.name

    def broker(self) -> AlpacaBroker:
        if self._broker is None:
            self._broker = AlpacaBroker(
                api_key=self.api_key,
                secret_key=self.secret_key,
                mode=self.mode,
                base_url=self.base_url,
                timeout_s=self.timeout_s,
                requests_per_minute=self.requests_per_minute,
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

    def account(self) -> Mapping[str, Decimal]:
        return self.broker().account()
