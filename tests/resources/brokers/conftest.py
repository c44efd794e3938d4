"""Shared set-up of the broker tests.

alpaca-py 0.44 imports ``websockets.legacy`` at import time, which warns (DeprecationWarning,
websockets >= 14) and fails collection under ``-W error``. It is third-party noise on import,
not behaviour of ours, so that one warning is ignored here while alpaca-py is first imported.
"""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"websockets\.legacy is deprecated", category=DeprecationWarning
    )
    import alpaca.trading  # noqa: F401


@pytest.fixture(autouse=True)
def _private_ledger(private_ledger: str) -> None:
    """Every broker test journals into its own SQLite ledger, never the project's default."""
