"""Every command-line test writes into its own ledger, never the project's default."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_ledger(private_ledger: str) -> None:
    """``ALLOCATOR_LEDGER_URL`` points at a fresh SQLite file for each test."""
