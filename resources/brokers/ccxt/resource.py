"""A ccxt exchange as a Dagster resource: configuration plus the :class:`Broker` methods.

Credentials come from the environment (``dg.EnvVar("CCXT_API_KEY")``). ``mode="paper"`` (the
default) uses the exchange's sandbox unless ``base_url`` points elsewhere; ``"live"`` needs
the exchange's live API.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from pydantic import Field

from resources.brokers.base import BrokerResource
from resources.brokers.ccxt.client import CcxtBroker
from resources.brokers.common import TradingMode

__all__ = ["CcxtBrokerResource"]


class CcxtBrokerResource(BrokerResource):
    """One ccxt exchange (crypto spot); implements :class:`allocator.execution.orders.Broker`."""

    exchange: str = Field(default="binance", description="ccxt exchange id (CCXT_EXCHANGE).")
    api_key: str = Field(description="pass dg.EnvVar('CCXT_API_KEY')")
    secret: str = Field(description="pass dg.EnvVar('CCXT_SECRET')")
    password: str | None = Field(default=None, description="OKX passphrase, if any.")
    mode: TradingMode = Field(default="paper", description="'paper' (default) or 'live'.")
    base_url: str | None = Field(default=None, description="Every API section → here.")
    timeout_s: float = Field(default=10.0, gt=0)
    enable_rate_limit: bool = Field(default=True, description="ccxt's own request limiter.")
    quote_currency: str = Field(default="USDT")

    def broker(self) -> CcxtBroker:
        client: CcxtBroker = super().broker()
        return client

    def _build(self) -> CcxtBroker:
        return CcxtBroker(
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

    def account(self) -> Mapping[str, Decimal]:
        return self.broker().account()
