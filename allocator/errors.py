"""Every typed failure of the allocator, in one hierarchy (STYLE §6).

Every error carries the context a person needs to fix the cause: the configuration key, or the
file, row and problem of a bad input, or the broker's answer. Nothing here is ever swallowed by
the core.

The hierarchy::

    AllocatorError
    ├── ConfigError (also ValueError)      a configuration key is wrong
    ├── InputError (also ValueError)       a file, a row, a problem
    ├── SolverError (also RuntimeError)    a solver missed its tolerance
    ├── BarIncompleteError                 a bar cannot be settled yet (SPEC §9)
    ├── PlanMismatchError                  a bar's rebuilt plan differs from its frozen one
    ├── BarAbandonedError                  an operator abandoned the bar: it is not run
    └── BrokerError                        a broker call failed (SPEC §9)
        ├── OrderRejectedError             definitive: the venue does not hold the order
        ├── DuplicateOrderError            definitive: the venue holds it, look it up
        └── AmbiguousBrokerError           unknown outcome: look it up, never resend

Why one module: a caller that must tell a rejected order from an ambiguous one, or a bad file
from a bad key, finds every type here without importing the module that raises it; the venue
adapters (``resources/brokers/*/errors.py``) only classify their library's exceptions into
these.
"""

from __future__ import annotations

__all__ = [
    "AllocatorError",
    "AmbiguousBrokerError",
    "BarAbandonedError",
    "BarIncompleteError",
    "BarLeasedError",
    "BrokerError",
    "ConfigError",
    "DuplicateOrderError",
    "InputError",
    "OrderRejectedError",
    "PlanMismatchError",
    "SolverError",
]


class AllocatorError(Exception):
    """Base class of every error the allocator raises on purpose."""


class ConfigError(AllocatorError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range.

    ``key`` is the dotted key (``correlation.threshold``); the message starts with it.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class InputError(AllocatorError, ValueError):
    """A row of an input file cannot be used.

    ``source`` names the file, ``row`` the 1-based data row (the header is row 0; ``None`` for
    a whole-file problem such as a missing column) and ``problem`` what is wrong with it.
    """

    def __init__(self, source: str, row: int | None, problem: str) -> None:
        self.source = source
        self.row = row
        self.problem = problem
        where = f"{source}: row {row}" if row is not None else source
        super().__init__(f"{where}: {problem}")


class SolverError(AllocatorError, RuntimeError):
    """A numerical solver did not reach its stated tolerance; no fallback is taken."""


class BarIncompleteError(AllocatorError):
    """The bar cannot be settled yet (an order's outcome is unknown); run it again later."""


class BarLeasedError(BarIncompleteError):
    """Another live runner holds the bar's lease (or took it over): this one sends nothing.

    Run the bar again later (:mod:`allocator.execution.lease`): the owner settles it, or its
    lease expires and the next runner recovers from the journal.
    """


class PlanMismatchError(AllocatorError):
    """A bar's plan rebuilt from its frozen inputs gives other orders than the frozen ones.

    The code that plans changed between two runs of one bar (or the stored plan was altered):
    a state that cannot be proven, so nothing is sent (docs/decisions/0012-live-bar-path.md).
    """


class BarAbandonedError(AllocatorError):
    """The bar was abandoned by an operator (final): it is neither planned nor sent again."""


class BrokerError(AllocatorError):
    """A broker call failed. Subclasses say whether the outcome is known."""


class OrderRejectedError(BrokerError):
    """Definitive: the venue refused the order (it does not exist there)."""


class DuplicateOrderError(BrokerError):
    """Definitive that an order with this client order id exists at the venue: look it up."""


class AmbiguousBrokerError(BrokerError):
    """Unknown outcome (timeout, 5xx, disconnect, rate limit): the order may have been accepted."""
