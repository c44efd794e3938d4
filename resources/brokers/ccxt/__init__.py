"""ccxt exchanges (Binance, Bybit; OKX best effort): config, client, mapping, errors.

Named ``crypto`` so that it never shadows the ``ccxt`` library itself.
"""

from resources.brokers.ccxt.client import CcxtBroker
from resources.brokers.ccxt.resource import CcxtBrokerResource

__all__ = ["CcxtBroker", "CcxtBrokerResource"]
