"""A ccxt exchange as a Dagster resource: configuration plus the :class:`Broker` methods.

Credentials come from the environment (``dg.EnvVar("CCXT_API_KEY")``). ``mode="paper"`` (the
default) uses the exchange's sandbox unless ``base_url`` points elsewhere; ``"live"`` needs
the exchange's live API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import dagster as dg
from pydantic import Field, PrivateAttr

from allocator.orders import BrokerOrder, OrderRequest
from resources.brokers.common import TradingMode
from resources.brokers.crypto.client import CcxtBroker

__all__ = ["CcxtBrokerResource"]


class CcxtBrokerResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """One ccxt exchange (crypto spot); implements :class:`allocator.orders.Broker`."""

    exchange: str = Field(default="binance", description="ccxt exchange id (CCXT_EXCHANGE).")
    api_key: str = Field(description="pass dg.EnvVar('CCXT_API_KEY')")
    secret: str = Field(description="pass dg.EnvVar('CCXT_SECRET')")
    password: str | None = Field(default=None, description="OKX passphrase, if any.")
    mode: TradingMode = Field(default="paper", description="'paper' (default) or 'live'.")
    base_url: str | None = Field(default=None, description="Every API section → here.")
    timeout_s: float = Field(default=10.0, gt=0)
    enable_rate_limit: bool = Field(default=True, description="ccxt's own request limiter.")
    quote_currency: str = Field(default="USDT")

    _broker: CcxtBroker | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return self.broker().name

    def broker(self) -> CcxtBroker:
        if self._broker is None:
            self._broker = CcxtBroker(
                exchange=self.exchange,
                api_key=self.api_key,
                secret=self.secret,
                password=self.password,
                mode=self.mode,
                base_url=self.base_url,
                timeout_s=self.timeout_s,
                enable_rate_limit=self.enable_rate_limit,
                quote_currency=self.quote_currency,
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
