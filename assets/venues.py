"""Venue reconciliation as an asset check (SPEC §9).

A reconciliation that finds a difference between a venue and the ledger (``allocator broker
reconcile``, the bar job's startup reconciliation, or any caller of
:func:`allocator.execution.reconcile.record_report`) halts new entries on that venue in the
ledger; ``run_bar`` then refuses entries routed there (exits still pass). This check makes the
halt visible in the Dagster UI next to the broker sink, with the differences as metadata
(:func:`~allocator.execution.reconcile.halt_check` is the verdict); it fails while any venue is
halted and passes once a later clean reconciliation has cleared it.

:func:`bar_venues` is how every asset and check builds the venues it trades or looks up: the
registry's :func:`~resources.brokers.registry.pipeline_venues` with the run's own settings
record, so the configuration file reaches the adapters (``[routing] crypto_exchange`` picks the
ccxt exchange when ``CCXT_EXCHANGE`` is unset), as it does for ``allocator bar run``.
"""

from typing import Any

import dagster as dg

from allocator.execution.orders import Broker, Venue
from allocator.execution.reconcile import halt_check
from allocator.settings import Settings
from resources.brokers.paper.resource import PaperBrokerResource
from resources.brokers.registry import pipeline_venues
from resources.dagster_resources import AllocatorSettings, LedgerResource


def bar_venues(
    settings: AllocatorSettings, store: Any, paper: PaperBrokerResource
) -> dict[Venue, Broker]:
    """The pipeline's venues for one step: each in its mode, the simulated ones keeping their
    orders in ``store`` (the step's ``resources.ledger.Ledger``), the real adapters configured
    from the ``settings`` resource's configuration file (and the venues' variables)."""
    record = Settings(
        config=settings.config(),
        config_path=settings.config_path,
        instruments=settings.instruments_path,
        ledger_url=store.url,
    )
    return pipeline_venues(
        settings.instruments(), ledger=store, paper=paper.config(), settings=record
    )


@dg.asset_check(asset="submitted_orders", description="No venue is halted by reconciliation.")
def venues_reconciled(ledger: LedgerResource) -> dg.AssetCheckResult:
    """Fails while a reconciliation difference halts new entries on some venue."""
    with ledger.open() as store:
        verdict = halt_check(store.venue_halts())
    return dg.AssetCheckResult(
        passed=verdict.passed,
        description=verdict.description,
        metadata={
            key: dg.MetadataValue.json(value) if not isinstance(value, str) else value
            for key, value in verdict.metadata.items()
        },
    )
