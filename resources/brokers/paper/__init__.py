"""The built-in simulated venue (the paper broker): fills at the bar's reference price plus
slippage, a fee schedule per venue, lot and minimum-notional rounding, optional partial fills,
the venues' duplicate-id rule, and its state in the ledger so that reconciliation runs against
it too. ``client`` is the broker; ``resource`` the Dagster resource that builds one per venue."""

from resources.brokers.paper.client import (
    MemoryPaperState,
    PaperBroker,
    PaperBrokerConfig,
    PaperFees,
    PaperState,
)

__all__ = ["MemoryPaperState", "PaperBroker", "PaperBrokerConfig", "PaperFees", "PaperState"]
