"""Interactive Brokers (ib_async ``IB``): config, client wrapper, mapping, error classes."""

from resources.brokers.ibkr.client import IbkrBroker
from resources.brokers.ibkr.resource import IbkrBrokerResource

__all__ = ["IbkrBroker", "IbkrBrokerResource"]
