"""Frozen records passed between the stages of one bar (SPEC §7).

Sign conventions: a signed quantity is + for a buy (or a long position) and − for a sell (or a
short); it is in the instrument's base units (shares, contracts, coins, currency units) and is a
whole multiple of the instrument's lot size. Prices are in the quote currency per base unit;
cash is in the quote currency, + when received. Every quantity, price, fee and cash figure is a
:class:`~decimal.Decimal`, never a binary float.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal, Inexact

from allocator.execution.orders import AssetClass, OrderRequest, Side, Venue

__all__ = [
    "Bar",
    "BrokerExecution",
    "GatedIntent",
    "Intent",
    "NetOrder",
    "Reason",
    "StrategyBudget",
    "StrategyState",
    "VirtualFill",
    "exact",
    "parse_bar",
]

# Money arithmetic: wide enough for any product of a quantity and a price, and it raises
# instead of rounding, so a figure that reaches the ledger is exact or the bar fails loudly.
exact = Context(prec=120, traps=[Inexact])


class Reason(enum.StrEnum):
    """Why an intent was cut or refused (SPEC §7); exactly one per cut intent."""

    BENCHED = "benched"
    HALTED = "halted"
    BUDGET = "budget"
    NO_PRICE = "no_price"
    UNKNOWN_SYMBOL = "unknown_symbol"
    ROUTING = "routing"
    MIN_NOTIONAL = "min_notional"
    INVALID = "invalid"


class StrategyState(enum.StrEnum):
    """The published state of a strategy that gating needs (SPEC §3, §5)."""

    NORMAL = "normal"
    HALF = "half"
    HALTED = "halted"
    BENCHED = "benched"


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: a session date (daily bars) or a timezone-aware instant (intraday bars).

    ``key`` is the canonical text used in client order ids and the ledger: ``YYYY-MM-DD`` for a
    date, ``YYYY-MM-DDTHH:MM:SSZ`` (UTC) for an instant, so that equal bars written
    differently give the same ids.
    """

    key: str

    @property
    def is_date(self) -> bool:
        return len(self.key) == 10

    def end(self) -> datetime:
        """The instant the bar is over: the next UTC midnight for a date, else the instant."""
        if self.is_date:
            day = date.fromisoformat(self.key)
            return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(days=1)
        return datetime.strptime(self.key, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

    def __str__(self) -> str:
        return self.key


def parse_bar(text: str) -> Bar:
    """Parse ``YYYY-MM-DD`` or an ISO-8601 instant with a timezone; raise ``ValueError``."""
    raw = text.strip()
    if len(raw) == 10:
        return Bar(date.fromisoformat(raw).isoformat())
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        raise ValueError(f"bar {text!r} has no timezone (write it in UTC, e.g. ...Z)")
    if moment.microsecond:
        raise ValueError(f"bar {text!r} has sub-second precision")
    return Bar(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Intent:
    """What a strategy wants for the next bar: a market order of ``qty`` (signed, base units).

    ``intent_id`` is unique; a resubmitted id with the same content is the same intent.
    """

    intent_id: str
    strategy: str
    symbol: str
    asset_class: AssetClass
    qty: Decimal
    bar: Bar


@dataclass(frozen=True, kw_only=True, slots=True)
class StrategyBudget:
    """A strategy's published budget for the bar: ``capital`` (quote currency, already
    multiplied by the breaker), the gross-notional cap per unit of capital and its state.
    Benched and halted strategies take no entries whatever their capital."""

    capital: Decimal
    max_leverage: Decimal = Decimal(1)
    state: StrategyState = StrategyState.NORMAL

    @property
    def limit(self) -> Decimal:
        """Gross notional the strategy may hold after an entry."""
        if self.state in (StrategyState.BENCHED, StrategyState.HALTED):
            return Decimal(0)
        return self.capital * self.max_leverage


@dataclass(frozen=True, kw_only=True, slots=True)
class GatedIntent:
    """The outcome of one intent. ``requested_qty`` and ``accepted_qty`` are signed like the
    request, in the symbol actually traded (``symbol``; ``routed_from`` is the intent's own
    symbol when it was mapped to a proxy); ``reason`` is set when ``accepted != requested``."""

    intent_id: str
    strategy: str
    symbol: str
    requested_qty: Decimal
    accepted_qty: Decimal
    reason: Reason | None
    routed_from: str | None = None
    detail: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class NetOrder:
    """The one order per symbol of a bar: ``qty`` > 0 base units in direction ``side``.

    ``buy_qty`` (B) and ``sell_qty`` (S) are the gross takes that netted into it;
    ``sent`` is false when the order stays unsent (below the minimum notional)."""

    symbol: str
    asset_class: AssetClass
    venue: Venue
    side: Side
    qty: Decimal
    reference_price: Decimal
    client_order_id: str
    buy_qty: Decimal
    sell_qty: Decimal
    sent: bool = True

    def request(self) -> OrderRequest:
        """The market order to send for this net order."""
        return OrderRequest(
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            asset_class=self.asset_class,
            side=self.side,
            qty=self.qty,
            venue=self.venue,
            reference_price=self.reference_price,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerExecution:
    """What the broker did with a net order: ``filled_qty`` (0 <= F <= N, base units, unsigned)
    at volume-weighted ``avg_price`` (``None`` when nothing filled) for total ``fee`` (>= 0)."""

    filled_qty: Decimal
    avg_price: Decimal | None
    fee: Decimal


@dataclass(frozen=True, kw_only=True, slots=True)
class VirtualFill:
    """One strategy's share of a symbol's bar: ``qty`` signed (+ bought), at ``price``, paying
    ``fee`` (>= 0, only on external fills). ``cash = −qty × price − fee`` (+ received).
    ``internal`` is true for the part crossed against other strategies."""

    strategy: str
    symbol: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    internal: bool

    @property
    def cash(self) -> Decimal:
        return exact.subtract(exact.minus(exact.multiply(self.qty, self.price)), self.fee)
