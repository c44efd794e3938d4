"""The Alpaca broker as a Dagster resource: configuration plus the :class:`Broker` methods.

Credentials come from the environment (``dg.EnvVar("ALPACA_API_KEY")``); they are never part
of an order, a log line or metadata. ``mode="paper"`` is the default; ``"live"`` needs the live
URL (SPEC §8 live-mode guard).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from pydantic import Field

from resources.brokers.alpaca.client import AlpacaBroker
from resources.brokers.base import BrokerResource
from resources.brokers.common import TradingMode

__all__ = ["AlpacaBrokerResource"]


class AlpacaBrokerResource(BrokerResource):
    """Alpaca trading API (equities, ETFs); a :class:`~allocator.execution.orders.Broker`."""

    api_key: str = Field(description="Alpaca key id; pass dg.EnvVar('ALPACA_API_KEY').")
    secret_key: str = Field(description="Alpaca secret; pass dg.EnvVar('ALPACA_SECRET_KEY').")
    mode: TradingMode = Field(default="paper", description="'paper' (default) or 'live'.")
    base_url: str | None = Field(default=None, description="Override, e.g. ALPACA_BASE_URL.")
    timeout_s: float = Field(default=10.0, gt=0, description="Timeout of every request.")
    requests_per_minute: int = Field(default=200, ge=1)

    @property
    def name(self) -> str:
        return AlpacaBroker.name  # a class attribute: no connection needed

    def broker(self) -> AlpacaBroker:
        client: AlpacaBroker = super().broker()
        return client

    def _build(self) -> AlpacaBroker:
        return AlpacaBroker(
            api_key=self.api_key,
            secret_key=self.secret_key,
            mode=self.mode,
            base_url=self.base_url,
            timeout_s=self.timeout_s,
            requests_per_minute=self.requests_per_minute,
        )

    def account(self) -> Mapping[str, Decimal]:
        return self.broker().account()
