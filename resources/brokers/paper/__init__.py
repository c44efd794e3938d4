"""The built-in simulated venue (the paper broker), in the same rooms as every venue adapter.

``client`` is the broker (fills at the bar's reference price plus slippage, lot and
minimum-notional rounding, optional partial fills, the venues' duplicate-id rule, its state in
memory or in the ledger so that reconciliation runs against it too); ``fees`` its fee schedule
per venue; ``resource`` the Dagster resource that holds its configuration. The venues the
pipeline and the command line trade are built by :mod:`resources.brokers.registry`.
"""

from resources.brokers.paper.client import (
    MemoryPaperState,
    PaperBroker,
    PaperBrokerConfig,
    PaperState,
)
from resources.brokers.paper.fees import PaperFees

__all__ = ["MemoryPaperState", "PaperBroker", "PaperBrokerConfig", "PaperFees", "PaperState"]
