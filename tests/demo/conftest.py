"""One short demo run shared by the demo tests: 2008-09-02 to 2009-09-30 (about 270 bars, the
rules warmed up over the 250 sessions before), with its last session through Dagster on a
temporary instance. On that window the default rules fire on the real prices: a bench and a
re-admission, halves, a halt and its release."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

SHORT_START = "2008-09-02"
SHORT_END = "2009-09-30"


@pytest.fixture(scope="session")
def short_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, object, Path]]:
    import dagster as dg

    from demo.runner import DemoPlan, run_demo

    root = tmp_path_factory.mktemp("demo")
    home = root / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        plan = DemoPlan(out_dir=root / "out", start=SHORT_START, end=SHORT_END)
        result = run_demo(plan, instance=instance)
        yield result, instance, root
