"""The ledger store (SQLite by default, PostgreSQL by URL) and its migrations."""

from resources.ledger.store import (
    AllocationRow,
    EventRow,
    Ledger,
    LedgerPaperState,
    ReconciliationRecord,
    ReturnRecord,
    SubmitReport,
    default_url,
)

__all__ = [
    "AllocationRow",
    "EventRow",
    "Ledger",
    "LedgerPaperState",
    "ReconciliationRecord",
    "ReturnRecord",
    "SubmitReport",
    "default_url",
]
