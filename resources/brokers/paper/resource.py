"""The simulated venue as a Dagster resource: its configuration (slippage, fill ratio).

The venues themselves (one paper broker per venue, their orders kept in the ledger so that a
re-executed run finds them and never places a second one, SPEC §9) are built by
:func:`resources.brokers.registry.pipeline_venues` from this configuration. Why the resource
holds only configuration: like every venue's ``resource.py``, it is what Dagster shows and
configures; building venues is the registry's job, the same for the pipeline and the CLI.
"""

from __future__ import annotations

from decimal import Decimal

import dagster as dg

from resources.brokers.paper.client import PaperBrokerConfig

__all__ = ["PaperBrokerResource"]


class PaperBrokerResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The built-in paper broker's configuration: ``slippage_bps`` (>= 0, against the order)
    and ``fill_ratio`` (in (0, 1]), as decimal strings."""

    slippage_bps: str = "0"
    fill_ratio: str = "1"

    def config(self) -> PaperBrokerConfig:
        """The validated :class:`PaperBrokerConfig` (a bad value raises ``ValueError``)."""
        return PaperBrokerConfig(
            slippage_bps=Decimal(self.slippage_bps), fill_ratio=Decimal(self.fill_ratio)
        )
