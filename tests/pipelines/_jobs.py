"""Reconstructable jobs for ``dg.execute_job`` (re-execution needs a job it can reload).

Dagster caches a reconstructed job per process, so its resources name their locations with
``dg.EnvVar`` (resolved when each run starts) rather than reading the environment when the
definitions are built: every test's run then uses that test's ledger and folders."""

from __future__ import annotations

import dagster as dg

from pipelines.definitions import build_definitions
from resources.brokers.paper.resource import PaperBrokerResource
from resources.dagster_resources import (
    AllocatorSettings,
    LedgerResource,
    PricesResource,
    parquet_io_manager,
)


def bar_job() -> dg.JobDefinition:
    resources = {
        "settings": AllocatorSettings(),
        "ledger": LedgerResource(url=dg.EnvVar("ALLOCATOR_LEDGER_URL")),
        "paper": PaperBrokerResource(),
        "market": PricesResource(prices_path=dg.EnvVar("ALLOCATOR_PRICES")),
        "io_manager": parquet_io_manager.configured({"base_dir": {"env": "ALLOCATOR_DATA_DIR"}}),
    }
    return build_definitions(resources).resolve_job_def("bar_job")
