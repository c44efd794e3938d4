"""Frozen records of one bar on the strategies' side: intents, budgets, outcomes (SPEC §7).

:class:`Bar` and :func:`parse_bar` name a bar; :class:`Intent` is what a strategy asks for,
:class:`StrategyBudget` what it may hold, :class:`GatedIntent` what became of an intent and
:class:`VirtualFill` a strategy's share of the bar's fills. The orders themselves (from the
bar's :class:`~allocator.execution.orders.NetOrder` to the venue's answer) are in
:mod:`allocator.execution.orders`, the refusal reasons in :mod:`allocator.execution.reasons`
and the strategy states in :mod:`allocator.states`.

Sign conventions: a signed quantity is + for a buy (or a long position) and − for a sell (or a
short); it is in the instrument's base units (shares, contracts, coins, currency units) and is a
whole multiple of the instrument's lot size. Prices are in the quote currency per base unit;
cash is in the quote currency, + when received. Every quantity, price, fee and cash figure is a
:class:`~decimal.Decimal`, never a binary float. Why: the ledger's sums must be exact (SPEC §7's
invariants), and :data:`exact` makes any rounding an error instead of a silent difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal, Inexact

from allocator.execution.orders import AssetClass
from allocator.execution.reasons import Reason
from allocator.states import StrategyState

__all__ = [
    "Bar",
    "GatedIntent",
    "Intent",
    "StrategyBudget",
    "VirtualFill",
    "exact",
    "parse_bar",
]

# Money arithmetic: wide enough for any product of a quantity and a price, and it raises
# instead of rounding, so a figure that reaches the ledger is exact or the bar fails loudly.
exact = Context(prec=120, traps=[Inexact])
"""Money arithmetic context: 120 digits, :class:`~decimal.Inexact` trapped."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: a session date (daily bars) or a timezone-aware instant (intraday bars).

    Attributes
    ----------
    key : str
        The canonical text used in client order ids and the ledger: ``YYYY-MM-DD`` for a date,
        ``YYYY-MM-DDTHH:MM:SSZ`` (UTC) for an instant, so that equal bars written differently
        give the same ids.
    """

    key: str

    @property
    def is_date(self) -> bool:
        """Whether the bar is a session date (a daily bar)."""
        return len(self.key) == 10

    def end(self) -> datetime:
        """Return the instant the bar is over: the next UTC midnight for a date, else itself."""
        if self.is_date:
            day = date.fromisoformat(self.key)
            return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(days=1)
        return datetime.strptime(self.key, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

    def __str__(self) -> str:
        """Return the canonical key."""
        return self.key


def parse_bar(text: str) -> Bar:
    """Parse ``YYYY-MM-DD`` or an ISO-8601 instant with a timezone; raise ``ValueError``."""
    raw = text.strip()
    if len(raw) > 40:  # the longest ISO-8601 instant with a zone is 32 characters
        raise ValueError(f"bar {raw[:40]!r}... is not a date or an ISO-8601 instant")
    if len(raw) == 10:
        bar = Bar(date.fromisoformat(raw).isoformat())
    else:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise ValueError(f"bar {text!r} has no timezone (write it in UTC, e.g. ...Z)")
        if moment.microsecond:
            raise ValueError(f"bar {text!r} has sub-second precision")
        try:
            bar = Bar(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        except OverflowError:
            raise ValueError(f"bar {text!r} is out of the representable range") from None
    try:
        bar.end()  # year 9999's last bar has no end: refused here, not where it is used
    except OverflowError:
        raise ValueError(f"bar {text!r} is out of the representable range") from None
    return bar


@dataclass(frozen=True, kw_only=True, slots=True)
class Intent:
    """What a strategy wants for the next bar: a market order (SPEC §7).

    Attributes
    ----------
    intent_id : str
        Unique; a resubmitted id with the same content is the same intent.
    strategy : str
        The strategy that asks.
    symbol : str
        The symbol it asks for (routing may map it to a proxy).
    asset_class : AssetClass
        The symbol's asset class as the strategy states it (checked against the table).
    qty : Decimal
        Signed base units, + buys, − sells; a non-zero multiple of the symbol's lot.
    bar : Bar
        The bar the market order is for.
    """

    intent_id: str
    strategy: str
    symbol: str
    asset_class: AssetClass
    qty: Decimal
    bar: Bar


@dataclass(frozen=True, kw_only=True, slots=True)
class StrategyBudget:
    """A strategy's published budget for the bar (SPEC §6-§7).

    Benched and halted strategies take no entries whatever their capital.

    Attributes
    ----------
    capital : Decimal
        Quote currency, >= 0, already multiplied by the breaker (a ``half`` strategy's is
        halved).
    max_leverage : Decimal
        Gross notional allowed per unit of capital, >= 0.
    state : StrategyState
        The published state (:func:`allocator.states.published_state`).
    """

    capital: Decimal
    max_leverage: Decimal = Decimal(1)
    state: StrategyState = StrategyState.NORMAL

    @property
    def limit(self) -> Decimal:
        """Gross notional (quote currency) the strategy may hold after an entry."""
        if not self.state.takes_entries:
            return Decimal(0)
        return self.capital * self.max_leverage


@dataclass(frozen=True, kw_only=True, slots=True)
class GatedIntent:
    """The outcome of one intent (SPEC §7: nothing disappears silently).

    Attributes
    ----------
    intent_id : str
        The intent's id.
    strategy : str
        The strategy that asked.
    symbol : str
        The symbol actually traded (a proxy's when mapped).
    requested_qty : Decimal
        Signed base units of ``symbol``, + buys: what the intent asked for.
    accepted_qty : Decimal
        Signed like the request, |accepted| <= |requested|: what passed.
    reason : Reason or None
        Set exactly when ``accepted_qty != requested_qty``.
    routed_from : str or None
        The intent's own symbol when it was mapped to a proxy.
    detail : str
        A note for a person (why a halted venue cut it, what routing found, which risk limit).
    limit, value : Decimal or None
        For a cut by the risk stage (docs/spec-12-risk.md): the limit that bound and the value
        it was compared with, in the unit the ``detail`` names (quote currency, base units,
        seconds, a fraction, a count); ``None`` when the reason has no figure (``halted``).
    """

    intent_id: str
    strategy: str
    symbol: str
    requested_qty: Decimal
    accepted_qty: Decimal
    reason: Reason | None
    routed_from: str | None = None
    detail: str = ""
    limit: Decimal | None = None
    value: Decimal | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class VirtualFill:
    """One strategy's share of a symbol's bar (SPEC §7 attribution).

    Attributes
    ----------
    strategy : str
        The strategy credited.
    symbol : str
        The symbol filled.
    qty : Decimal
        Signed base units, + bought.
    price : Decimal
        Quote currency per base unit: the broker's average, or the reference price for an
        internal cross with no broker fill.
    fee : Decimal
        Quote currency, >= 0, only on external fills.
    internal : bool
        True for the part crossed against other strategies.
    base_fee : Decimal
        The strategy's share of a fee the venue took in the symbol's base currency (base units,
        >= 0, only on external fills; a ccxt buy on Binance): it reduces the position, not the
        cash, and need not be a whole number of lots (see :attr:`position_change`).
    other_fees : tuple of (str, Decimal)
        The strategy's share of fees in third currencies (``(currency, amount >= 0)`` sorted by
        currency, e.g. ``("BNB", ...)``): recorded in that currency, neither cash nor position.
    """

    strategy: str
    symbol: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    internal: bool
    base_fee: Decimal = Decimal(0)
    other_fees: tuple[tuple[str, Decimal], ...] = ()

    @property
    def cash(self) -> Decimal:
        """Quote currency, + received: −qty × price − fee, exact."""
        return exact.subtract(exact.minus(exact.multiply(self.qty, self.price)), self.fee)

    @property
    def position_change(self) -> Decimal:
        """Signed base units added to the strategy's position: ``qty − base_fee``, exact."""
        return exact.subtract(self.qty, self.base_fee)
