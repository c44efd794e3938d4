"""Why an intent, a submitted row or part of an order was refused: one vocabulary (SPEC §7).

Every refusal from the inbox to the venue carries exactly one :class:`Reason`: the inbox's
checks of a submitted row, the ledger's (a conflicting or restated row), routing, gating and
the order-level cuts (no price, minimum notional). The values are the strings the ledger stores
and the command line prints; they never change.

The gating kernel and the bar's plan carry reasons as ``int8`` codes in arrays (one per
intent). Those codes are derived here and nowhere else: :data:`BY_CODE` lists the reasons the
kernels emit in code order (``0``: passed whole), :attr:`Reason.code` and
:meth:`Reason.from_code` translate. Codes are positions in that tuple, so a new kernel reason is
appended, never inserted.

Why one enum rather than one per stage: a refusal is reported the same way wherever it arose
(``refusals.csv``, the ledger's gating table, the inbox's messages), and a reader who sees a
reason finds its meaning in one place.
"""

from __future__ import annotations

import enum

__all__ = ["BY_CODE", "PASSED", "RISK_REASONS", "SPEC7_REASONS", "Reason"]


class Reason(enum.StrEnum):
    """One reason for a refusal or a cut; ``meaning`` says when it is given.

    Attributes
    ----------
    value : str
        The stored and printed name (``"budget"``).
    meaning : str
        One line: when the reason is given.
    """

    _value_: str
    meaning: str

    def __new__(cls, value: str, meaning: str) -> Reason:
        """Build a member from its stored name and its one-line meaning."""
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    # An intent's outcome (gating, routing, the order-level cuts; SPEC §7).
    BENCHED = "benched", "the strategy is benched by the correlation rule: it takes no entries"
    HALTED = (
        "halted",
        "the strategy is halted by its drawdown breaker (no entries), or the book or the "
        "venue is halted by an operator (nothing is sent)",
    )
    BUDGET = "budget", "the entry would take gross notional beyond capital × max leverage"
    NO_PRICE = "no_price", "a symbol involved has no reference price in this bar"
    UNKNOWN_SYMBOL = "unknown_symbol", "the symbol is not in the symbol table"
    ROUTING = "routing", "no venue takes it: IB unused and no proxy, or the venue halted"
    MIN_NOTIONAL = "min_notional", "the net order's notional is below the instrument's minimum"
    INVALID = "invalid", "a field is missing, malformed or contradicts the symbol table"
    LATE = "late", "the intent is for a bar that is already sealed"
    # The pre-trade risk stage (docs/spec-12-risk.md, the project's §12).
    REDUCING = "reducing", "the book or the venue is reducing: exits only, no symbol's net grows"
    RISK_NOTIONAL = "risk_notional", "the net order's notional would exceed max_order_notional"
    RISK_QTY = "risk_qty", "the net order's quantity would exceed max_order_qty"
    RISK_POSITION = "risk_position", "the book's net in the symbol would exceed max_symbol_position"
    RISK_EXPOSURE = "risk_exposure", "the book's gross exposure would exceed max_gross_exposure"
    RISK_PRICE = "risk_price", "the reference price is stale or moved beyond the price collar"
    RISK_RATE = "risk_rate", "beyond max_orders_per_bar or the venue's order rate limit"
    # A submitted row refused by the inbox before it is stored.
    UNKNOWN_STRATEGY = "unknown_strategy", "the strategy is not registered"
    UNKNOWN_ASSET_CLASS = "unknown_asset_class", "the asset class is not one of SPEC §8's"
    STALE_BAR = "stale_bar", "the bar ended longer ago than the inbox's tolerance"
    DUPLICATE = "duplicate", "the same key appears earlier in the file with other content"
    # A submitted row refused by the ledger against what it already stores.
    CONFLICT = "conflict", "the intent id is already stored with other content"
    RESTATED = "restated", "the return is already stored with another value (not a correction)"
    # A daily return refused by the strategy gateway (docs/decisions/0015-strategy-gateway.md).
    SETTLED = "settled", "the session is settled: an allocation was published from its returns"
    BACKDATED = "backdated", "the date is before the strategy's last stored return"

    @property
    def code(self) -> int:
        """The ``int8`` code of this reason in the kernels' arrays (see :data:`BY_CODE`).

        Raises
        ------
        ValueError
            For a reason that no kernel emits (the inbox's and the ledger's).
        """
        code = _CODE_OF.get(self)
        if code is None:
            raise ValueError(f"reason {self.value!r} has no kernel code")
        return code

    @classmethod
    def from_code(cls, code: int) -> Reason | None:
        """Return the reason of kernel code ``code``; ``None`` for :data:`PASSED`."""
        return BY_CODE[code]


PASSED = 0
"""The kernel code of an intent that passed whole (no reason)."""

BY_CODE: tuple[Reason | None, ...] = (
    None,
    Reason.BENCHED,
    Reason.HALTED,
    Reason.BUDGET,
    Reason.NO_PRICE,
    Reason.MIN_NOTIONAL,
    Reason.ROUTING,
    Reason.REDUCING,
    Reason.RISK_NOTIONAL,
    Reason.RISK_QTY,
    Reason.RISK_POSITION,
    Reason.RISK_EXPOSURE,
    Reason.RISK_PRICE,
    Reason.RISK_RATE,
)
"""The reasons the gating kernel and the bar's plan emit, indexed by their ``int8`` code."""

_CODE_OF = {reason: code for code, reason in enumerate(BY_CODE) if reason is not None}

SPEC7_REASONS = frozenset(
    {
        Reason.BENCHED,
        Reason.HALTED,
        Reason.BUDGET,
        Reason.NO_PRICE,
        Reason.UNKNOWN_SYMBOL,
        Reason.ROUTING,
        Reason.MIN_NOTIONAL,
        Reason.INVALID,
        Reason.LATE,
        Reason.REDUCING,
        Reason.RISK_NOTIONAL,
        Reason.RISK_QTY,
        Reason.RISK_POSITION,
        Reason.RISK_EXPOSURE,
        Reason.RISK_PRICE,
        Reason.RISK_RATE,
    }
)
"""The reasons SPEC §7 lists for an intent's outcome, with §12's risk reasons (the rest refuse a
submitted row)."""

RISK_REASONS = frozenset(
    {
        Reason.HALTED,
        Reason.REDUCING,
        Reason.RISK_NOTIONAL,
        Reason.RISK_QTY,
        Reason.RISK_POSITION,
        Reason.RISK_EXPOSURE,
        Reason.RISK_PRICE,
        Reason.RISK_RATE,
    }
)
"""The reasons the risk stage gives (docs/spec-12-risk.md); ``halted`` is shared with gating."""
