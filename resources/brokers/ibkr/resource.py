"""Interactive Brokers as a Dagster resource: connection settings plus the Broker methods."""

from __future__ import annotations

from pydantic import Field

from resources.brokers.base import BrokerResource
from resources.brokers.common import TradingMode
from resources.brokers.ibkr.client import IbkrBroker

__all__ = ["IbkrBrokerResource"]


class IbkrBrokerResource(BrokerResource):
    """TWS / IB Gateway (futures, forex, equities); implements :class:`Broker`."""

    host: str = Field(default="127.0.0.1", description="IB_HOST")
    port: int = Field(default=7497, description="IB_PORT (7497 TWS paper, 4002 gateway paper)")
    client_id: int = Field(default=1, description="IB_CLIENT_ID; keep it fixed")
    mode: TradingMode = Field(default="paper")
    timeout_s: float = Field(default=10.0, gt=0)
    account: str = Field(default="", description="Account id; default: the first managed one.")

    @property
    def name(self) -> str:
        return IbkrBroker.name  # a class attribute: no connection needed

    def broker(self) -> IbkrBroker:
        client: IbkrBroker = super().broker()
        return client

    def _build(self) -> IbkrBroker:
        return IbkrBroker(
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            mode=self.mode,
            timeout_s=self.timeout_s,
            account=self.account,
        )
