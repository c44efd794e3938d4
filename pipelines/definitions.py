"""The code location: assets, checks, jobs, the schedule, the sensor and the resources."""

from __future__ import annotations

from typing import Any

import dagster as dg

import assets
import assets.checks
import assets.execution
import assets.research
import assets.rules
from allocator.settings import Settings, load_settings
from pipelines.alerts import build_alert_sensors
from pipelines.jobs import bar_job, bar_job_multiprocess, rebalance_job
from pipelines.schedules import rebalance_schedule
from pipelines.sensors import bar_sensor, build_bar_sensor
from resources.alerts import AlertWebhook
from resources.dagster_resources import default_resources


def build_definitions(
    resources: dict[str, Any], settings: Settings | None = None
) -> dg.Definitions:
    """The definitions with the given resources (tests pass temporary locations); the bar
    sensor is built from ``settings`` (default: the record's defaults)."""
    return dg.Definitions(
        assets=dg.load_assets_from_package_module(assets),
        asset_checks=dg.load_asset_checks_from_package_module(assets),
        jobs=[rebalance_job, bar_job, bar_job_multiprocess, assets.research.research_job],
        schedules=[rebalance_schedule],
        sensors=[
            bar_sensor if settings is None else build_bar_sensor(settings),
            *build_alert_sensors(settings or Settings()),
        ],
        # the alert hook is off unless the resources name a webhook (ALLOCATOR_ALERT_WEBHOOK)
        resources={"alerts": AlertWebhook(), **resources},
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location: one :func:`~allocator.settings.load_settings` record (the TOML file,
    then the ``ALLOCATOR_*`` environment) for the resources and the sensor alike."""
    settings = load_settings()
    return build_definitions(default_resources(settings=settings), settings)
