"""Fixtures of the pipeline tests (the world itself is in ``world.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from pipeline.world import World, write_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return write_world(tmp_path / "world")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst
