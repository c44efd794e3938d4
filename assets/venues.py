"""Venue reconciliation as an asset check (SPEC §9).

A reconciliation that finds a difference between a venue and the ledger (``allocator broker
reconcile``, the bar job's startup reconciliation, or any caller of
:func:`allocator.execution.reconcile.record_report`) halts new entries on that venue in the
ledger; ``run_bar`` then refuses entries routed there (exits still pass). This check makes the
halt visible in the Dagster UI next to the broker sink, with the differences as metadata
(:func:`~allocator.execution.reconcile.halt_check` is the verdict); it fails while any venue is
halted and passes once a later clean reconciliation has cleared it.
"""

import dagster as dg

from allocator.execution.reconcile import halt_check
from resources.dagster_resources import LedgerResource


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
