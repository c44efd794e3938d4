"""Reconstructable jobs for ``dg.execute_job`` (re-execution needs a job it can reload).

The resources are located from the environment (``ALLOCATOR_*``), as in the code location."""

from __future__ import annotations

import dagster as dg

from pipelines.definitions import build_definitions
from resources.dagster_resources import default_resources


def bar_job() -> dg.JobDefinition:
    return build_definitions(default_resources()).resolve_job_def("bar_job")
