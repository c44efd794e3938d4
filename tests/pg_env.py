"""The test servers' URLs from the environment, with the suite's one rule for a missing one.

``make test`` starts PostgreSQL (``scripts/pg.sh``) and exports the URLs. Without a URL the
PostgreSQL half of a parametrised test is skipped with the reason, or fails when ``CI`` is
set, so that CI cannot pass on SQLite alone.
"""

from __future__ import annotations

import os

import pytest


def required_url(variable: str, pg_sh_command: str) -> str:
    """The URL in ``variable``; skip (or, under CI, fail) naming how to set it."""
    url = os.environ.get(variable, "").strip()
    if not url:
        message = (
            f"{variable} is not set: run `bash scripts/pg.sh start` and "
            f'`export {variable}="$(bash scripts/pg.sh {pg_sh_command})"` (make test does both)'
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url
