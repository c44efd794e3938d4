"""The simulated venue as a Dagster resource: the built-in paper broker for every venue, its
orders kept in the ledger so that a re-executed run finds them (and never places a second one)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import dagster as dg

from allocator.execution.instruments import InstrumentTable
from allocator.execution.orders import Venue

__all__ = ["PaperBrokerResource"]


class PaperBrokerResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The built-in paper broker for every venue, its orders kept in the ledger so that a
    re-executed run finds them (and never places a second order)."""

    slippage_bps: str = "0"
    fill_ratio: str = "1"

    def brokers(self, ledger: Any, instruments: InstrumentTable) -> dict[Venue, Any]:
        from resources.brokers.paper.client import PaperBroker, PaperBrokerConfig
        from resources.ledger import LedgerPaperState

        cfg = PaperBrokerConfig(
            slippage_bps=Decimal(self.slippage_bps), fill_ratio=Decimal(self.fill_ratio)
        )
        state = LedgerPaperState(ledger)
        return {
            v: PaperBroker(venue=v, instruments=instruments, config=cfg, state=state) for v in Venue
        }
