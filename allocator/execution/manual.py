"""One operator order (``allocator broker submit``), journaled like a bar's orders (SPEC §9).

:func:`submit_manual_order` writes the order ``pending_submit`` in the ledger before anything
is sent, sends it through :func:`~.orders.submit_idempotently` (look up first, send at most
once, resolve an ambiguous outcome by lookups) and journals the outcome. It has no I/O of its
own: the ledger is the :class:`~.ledger.Ledger` protocol and the venue a
:class:`~.orders.Broker`.

Why here and not in the ledger: the ledger only records. Deciding to send, and in which
order the journal and the venue are touched, is the same rule for an operator's order as for
a bar's, so it lives in the core next to :func:`~.bar.run_bar`, where a test can drive it with
any ledger and any broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from allocator.execution.ledger import Ledger
from allocator.execution.orders import Broker, OrderRequest, SubmitOutcome, submit_idempotently

__all__ = ["submit_manual_order"]


def submit_manual_order(
    ledger: Ledger,
    broker: Broker,
    request: OrderRequest,
    *,
    account: str,
    mode: str,
    lookups: int = 3,
    delay_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SubmitOutcome:
    """Journal ``request``, send it at most once, journal the outcome and return it.

    The journal entry has bar ``manual``, ``account`` and ``mode``. Re-running it with the
    same client order id sends nothing twice (the lookup finds the order); an outcome still
    ambiguous after ``lookups`` lookups stays ``unknown`` in the journal, to be resolved by a
    later run. An id the journal holds for a different order, or a mode other than
    ``paper``/``live``, is a :class:`ValueError` raised before anything is sent.
    """
    ledger.journal_manual_order(request, account=account, mode=mode)
    outcome = submit_idempotently(broker, request, lookups=lookups, delay_s=delay_s, sleep=sleep)
    ledger.record_order_outcome(request.client_order_id, outcome)
    return outcome
