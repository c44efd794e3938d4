"""The ledger of record (SQLite by default, PostgreSQL by URL), its schema and its migrations.

:class:`Ledger` is the one API (``store``, composed of ``inbox``, ``allocations``, ``journal``,
``bars`` and ``reconciliations`` over ``engine``); it implements the core's
:class:`allocator.execution.ledger.Ledger` protocol (SPEC §9: the journal is the truth).
``paper_state`` keeps the paper broker's orders in the same database. ``schema`` and the
Alembic ``migrations`` are the tables: nothing outside this package reads or writes them.
"""

from allocator.execution.ledger import ReconciliationRecord
from resources.ledger.allocations import AllocationRow, EventRow
from resources.ledger.bars import BarSavings
from resources.ledger.inbox import PendingBar, ReturnRecord, SubmitReport
from resources.ledger.paper_state import LedgerPaperState
from resources.ledger.store import Ledger

__all__ = [
    "AllocationRow",
    "BarSavings",
    "EventRow",
    "Ledger",
    "LedgerPaperState",
    "PendingBar",
    "ReconciliationRecord",
    "ReturnRecord",
    "SubmitReport",
]
