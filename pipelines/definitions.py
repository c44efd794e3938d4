"""The code location: assets, checks, jobs, the schedule, the sensor and the resources."""

from __future__ import annotations

from typing import Any

import dagster as dg

import assets
import assets.checks
import assets.execution
import assets.rules
from pipelines.jobs import bar_job, bar_job_multiprocess, rebalance_job
from pipelines.schedules import rebalance_schedule
from pipelines.sensors import bar_sensor
from resources.dagster_resources import default_resources


def build_definitions(resources: dict[str, Any]) -> dg.Definitions:
    """The definitions with the given resources (tests pass temporary locations)."""
    return dg.Definitions(
        assets=dg.load_assets_from_package_module(assets),
        asset_checks=dg.load_asset_checks_from_package_module(assets),
        jobs=[rebalance_job, bar_job, bar_job_multiprocess],
        schedules=[rebalance_schedule],
        sensors=[bar_sensor],
        resources=resources,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(default_resources())
