"""The ledger: the allocator's system of record (SPEC §6-§9), one class over five parts.

:class:`Ledger` is the one object every caller opens (``Ledger(url)``, then ``close()``). It is
composed of one class per concern, each in its own module and each a
:class:`~resources.ledger.engine.Database` (the engine, brought to the Alembic head on open):

* :class:`~resources.ledger.inbox.Inbox`: strategies, intents per bar, daily returns;
* :class:`~resources.ledger.allocations.Allocations`: published allocations, budgets, events;
* :class:`~resources.ledger.journal.Journal`: the order journal (SPEC §9);
* :class:`~resources.ledger.bars.Bars`: recorded bars, fills, gating, positions, cash, savings;
* :class:`~resources.ledger.reconciliations.Reconciliations`: what the ledger expects at a
  venue, reconciliations and venue halts (SPEC §9);
* :class:`~resources.ledger.sealing.Sealing`: each bar's seal, its frozen plan and the
  intents refused ``late`` (docs/decisions/0012-live-bar-path.md);
* :class:`~resources.ledger.lanes.Lanes`: the bar lane's open bars, failed runs, retries,
  abandonment and halt (docs/decisions/0012-live-bar-path.md).
* :class:`~resources.ledger.gateway.Gateway`: the strategy gateway's token hashes, its returns
  policy with the corrections journal, and each strategy's own reads
  (docs/decisions/0015-strategy-gateway.md);
* :class:`~resources.ledger.leases.Leases`: who runs a bar now, its lease
  (docs/decisions/0016-ccxt-fees-and-bar-leases.md);
* :class:`~resources.ledger.risk.Risk`: the trading-state journal, the kill switch's equity
  marks, the risk stage's denials and send gates (docs/spec-12-risk.md).

It implements the core's :class:`allocator.execution.ledger.Ledger` protocol. The paper
broker's state (:class:`~resources.ledger.paper_state.LedgerPaperState`) shares the database
but not this class: it is the simulated venue's memory, not the ledger's record.

Why mixins over one shared engine rather than delegation to five objects: callers keep the flat
API they use today (``ledger.positions()``, ``ledger.journal_orders(...)``), the core's protocol
stays one object, and there is one engine, one connection pool and one ``close()``, whereas
delegation would either forward some forty methods by hand or make every caller name the part
(``ledger.journal.orders()``). Each part reads and writes its own tables; the few writes that
span two (a bar's fills name their journaled order's venue) go through a module function of
the owning part, not through another part's methods.
"""

from __future__ import annotations

from resources.ledger.allocations import Allocations
from resources.ledger.bars import Bars
from resources.ledger.gateway import Gateway
from resources.ledger.inbox import Inbox
from resources.ledger.journal import Journal
from resources.ledger.lanes import Lanes
from resources.ledger.leases import Leases
from resources.ledger.reconciliations import Reconciliations
from resources.ledger.risk import Risk
from resources.ledger.sealing import Sealing

__all__ = ["Ledger"]


class Ledger(
    Inbox, Allocations, Journal, Bars, Reconciliations, Sealing, Lanes, Gateway, Leases, Risk
):
    """The store on ``url`` (none: :func:`~allocator.settings.default_ledger_url`); the schema
    is upgraded on open (``upgrade=False`` skips it)."""
