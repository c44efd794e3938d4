"""Orders and their states, from a bar's net order to the venue's answer (SPEC §7-§9).

The vocabulary (:class:`AssetClass`, :class:`Venue`, :class:`Side`, :class:`OrderState`), the
records in the order a bar uses them (:class:`NetOrder`, the one order per symbol a bar decides;
:class:`OrderRequest`, what is sent; :class:`BrokerOrder` and :class:`BrokerFill`, what the venue
reports; :class:`BrokerExecution`, what attribution needs of it), the deterministic
:func:`client_order_id`, the :class:`Broker` interface every venue implements and
:func:`submit_idempotently`, the only place that decides between "send" and "look it up"
(SPEC §9). The broker errors it classifies are in :mod:`allocator.errors`.

Quantities and prices are :class:`~decimal.Decimal`; quantities on orders are positive with the
direction in ``side``; fills carry the venue's own fill id for deduplication.

Why the interface and the submission path share this module with the records rather than a
module of their own: they are one concept, an order's life from the decision to the venue's
answer, each piece small, and :func:`submit_idempotently` is written against these records and
nothing else; one module keeps the SPEC §9 rules on one page.
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from allocator.errors import AmbiguousBrokerError, DuplicateOrderError, OrderRejectedError

__all__ = [
    "AssetClass",
    "Broker",
    "BrokerExecution",
    "BrokerFill",
    "BrokerOrder",
    "FeeKind",
    "NetOrder",
    "OrderRequest",
    "OrderState",
    "Side",
    "SubmitOutcome",
    "Venue",
    "client_order_id",
    "fee_kind",
    "submit_idempotently",
]

CLIENT_ORDER_ID_LENGTH = 32


class AssetClass(enum.StrEnum):
    """Asset classes of SPEC §8; the routing key."""

    EQUITY = "equity"
    ETF = "etf"
    OPTION = "option"
    FUTURE = "future"
    FOREX = "forex"
    CRYPTO = "crypto"


class Venue(enum.StrEnum):
    """The three brokers of SPEC §8."""

    ALPACA = "alpaca"
    IBKR = "ibkr"
    CCXT = "ccxt"


class Side(enum.StrEnum):
    """Direction of an order; ``sign`` is +1 for a buy, -1 for a sell."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @classmethod
    def of(cls, signed_qty: Decimal | int) -> Side:
        """Return the side of a signed quantity (+ buys); ``ValueError`` for zero."""
        if signed_qty == 0:
            raise ValueError("a zero quantity has no side")
        return cls.BUY if signed_qty > 0 else cls.SELL


class OrderState(enum.StrEnum):
    """Lifecycle of an order in the ledger's journal (SPEC §9).

    ``pending_submit`` is written before the order is sent; ``unknown`` means the venue may or
    may not hold it (timeout, 5xx, disconnect) and it must be resolved by a lookup, never by a
    blind resubmit. ``filled``, ``cancelled`` and ``rejected`` are final.
    """

    PENDING_SUBMIT = "pending_submit"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """Whether the venue will not change this order any more."""
        return self in _FINAL_STATES


_FINAL_STATES = frozenset({OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED})


def client_order_id(account: str, bar: str, symbol: str, side: Side | str, attempt: int = 0) -> str:
    """Deterministic client order id of SPEC §9: 32 characters of ``[0-9a-f]``.

    A pure function of (account, bar, symbol, side, attempt): re-running a bar gives the same id,
    so a venue (or our lookup) recognises the order instead of placing a second one. The value is
    accepted by Alpaca, Binance (``newClientOrderId``), Bybit (``orderLinkId``), OKX (``clOrdId``)
    and as IB's ``orderRef``.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    canonical = "\x1f".join((account, bar, symbol, str(Side(side).value), str(attempt)))
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class NetOrder:
    """The one order per symbol of a bar (SPEC §7): the net of the strategies' takes.

    Attributes
    ----------
    symbol : str
        The symbol traded (a proxy's when the intents were mapped through the proxy map).
    asset_class : AssetClass
        The symbol's asset class.
    venue : Venue
        Where it is sent (SPEC §8).
    side : Side
        Direction of the net: ``buy`` when the buy takes exceed the sell takes.
    qty : Decimal
        Unsigned base units, > 0: N = |B − S|, a whole number of lots.
    reference_price : Decimal
        The bar's reference price, quote currency per base unit, > 0.
    client_order_id : str
        Deterministic id (:func:`client_order_id` of account, bar, symbol, side).
    buy_qty : Decimal
        B: unsigned base units, >= 0, the sum of the positive takes that netted into it.
    sell_qty : Decimal
        S: unsigned base units, >= 0, the sum of |negative takes|.
    """

    symbol: str
    asset_class: AssetClass
    venue: Venue
    side: Side
    qty: Decimal
    reference_price: Decimal
    client_order_id: str
    buy_qty: Decimal
    sell_qty: Decimal

    def request(self) -> OrderRequest:
        """Build the market order to send for this net order."""
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
class OrderRequest:
    """A market order to send; validated on construction.

    Attributes
    ----------
    client_order_id : str
        At most 32 characters of ``[A-Za-z0-9]`` (SPEC §9).
    symbol : str
        The venue-independent symbol (``SPY``, ``BTC/USDT``, ``ES:202506:CME``).
    asset_class : AssetClass
        The symbol's asset class.
    side : Side
        Direction.
    qty : Decimal
        Unsigned base units (shares, contracts, coins), > 0.
    venue : Venue
        The venue it is meant for.
    reference_price : Decimal or None
        The bar's price, quote currency per base unit, used for paper fills and checks.
    """

    client_order_id: str
    symbol: str
    asset_class: AssetClass
    side: Side
    qty: Decimal
    venue: Venue
    reference_price: Decimal | None = None

    def __post_init__(self) -> None:
        """Check the quantity and the client order id."""
        if self.qty <= 0:
            raise ValueError(f"order {self.client_order_id}: qty must be > 0, got {self.qty}")
        if len(self.client_order_id) > CLIENT_ORDER_ID_LENGTH or not self.client_order_id.isalnum():
            raise ValueError(
                f"client order id {self.client_order_id!r} must be <= 32 characters of [A-Za-z0-9]"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerFill:
    """One execution reported by a venue.

    Attributes
    ----------
    fill_id : str
        The venue's own id of the execution (the ledger's deduplication key).
    client_order_id : str
        The order it belongs to.
    symbol : str
        The symbol filled.
    side : Side
        Direction.
    qty : Decimal
        Unsigned base units, > 0: the quantity traded, before any fee taken from it.
    price : Decimal
        Quote currency per base unit.
    fee : Decimal
        In ``fee_currency``, >= 0 when paid.
    ts : datetime or None
        The venue's timestamp (timezone-aware UTC) when it gives one.
    fee_currency : str or None
        The currency the venue charged the fee in; ``None`` is the quote currency. When it is
        the symbol's base currency (a Binance buy), the venue took the fee out of the base
        units received: the position grows by ``qty - fee`` on a buy (shrinks by ``qty + fee``
        on a sell). Another currency (BNB) is a fee in that currency, not in the quote.
    """

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime | None = None
    fee_currency: str | None = None

    @property
    def fee_kind(self) -> FeeKind:
        """Which :class:`FeeKind` the fee is (quote, base or a third currency)."""
        return fee_kind(self.symbol, self.fee_currency)

    @property
    def position_change(self) -> Decimal:
        """Signed base units the fill adds to the position (+ bought), net of a base fee."""
        signed = self.qty if self.side is Side.BUY else -self.qty
        return signed - self.fee if self.fee_kind is FeeKind.BASE else signed


class FeeKind(enum.StrEnum):
    """The currency a venue charged a fill's fee in, relative to the fill's symbol.

    ``quote``: the quote currency (``fee_currency`` ``None`` or the quote of a ``BASE/QUOTE``
    symbol), paid out of cash. ``base``: the symbol's base currency (a Binance buy pays in the
    coin received), taken out of the position. ``other``: a third currency (BNB), recorded in
    that currency, neither cash nor position.
    """

    QUOTE = "quote"
    BASE = "base"
    OTHER = "other"


def fee_kind(symbol: str, fee_currency: str | None) -> FeeKind:
    """Classify ``fee_currency`` against ``symbol`` (see :class:`FeeKind`).

    Only a ``BASE/QUOTE`` symbol (ccxt's unified spot form) has a base currency; for any other
    symbol a named currency is a third currency.
    """
    if fee_currency is None:
        return FeeKind.QUOTE
    base, slash, quote = symbol.partition("/")
    if slash and fee_currency == quote:
        return FeeKind.QUOTE
    if slash and fee_currency == base:
        return FeeKind.BASE
    return FeeKind.OTHER


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerOrder:
    """The venue's view of one order.

    Attributes
    ----------
    client_order_id : str
        Our id of the order.
    venue_order_id : str
        The venue's id of the order.
    symbol : str
        The symbol ordered.
    side : Side
        Direction.
    qty : Decimal
        Unsigned base units ordered, > 0.
    filled_qty : Decimal
        Unsigned base units filled so far (cumulative), 0 <= filled_qty <= qty.
    avg_price : Decimal or None
        Volume-weighted price of the fills, quote currency per base unit; ``None`` before any.
    fee : Decimal
        Cumulative fee, quote currency, >= 0.
    state : OrderState
        Where the order is in its lifecycle.
    fills : tuple of BrokerFill
        The executions the venue reported with it (may be empty even when filled).
    """

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    fee: Decimal
    state: OrderState
    fills: tuple[BrokerFill, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerExecution:
    """What the broker did with a net order, as attribution needs it (SPEC §7).

    Attributes
    ----------
    filled_qty : Decimal
        F: unsigned base units filled, 0 <= F <= N (the net order's qty).
    avg_price : Decimal or None
        P: volume-weighted price, quote currency per base unit; ``None`` when nothing filled.
    fee : Decimal
        The fee in the quote currency, >= 0.
    base_fee : Decimal
        The fee the venue took in the symbol's base currency (base units, >= 0): the position
        grows by F − ``base_fee`` on a buy and shrinks by F + ``base_fee`` on a sell.
    other_fees : tuple of (str, Decimal)
        Fees in third currencies (BNB), ``(currency, amount >= 0)`` sorted by currency.
    """

    filled_qty: Decimal
    avg_price: Decimal | None
    fee: Decimal
    base_fee: Decimal = Decimal(0)
    other_fees: tuple[tuple[str, Decimal], ...] = ()


@runtime_checkable
class Broker(Protocol):
    """What every venue adapter and the paper broker implement (SPEC §9)."""

    @property
    def name(self) -> str:
        """The venue's name as routing knows it (``alpaca``, ``ibkr``, ``ccxt``, ``paper``)."""
        ...

    def submit(self, request: OrderRequest) -> BrokerOrder:
        """Place a market order.

        Raises :class:`~allocator.errors.OrderRejectedError`,
        :class:`~allocator.errors.DuplicateOrderError` or
        :class:`~allocator.errors.AmbiguousBrokerError` rather than returning a guess.
        """
        ...

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        """Return the venue's order with this client order id, or ``None`` if it is unknown.

        ``None`` only when the venue says it does not know the id; transport failures raise
        :class:`~allocator.errors.AmbiguousBrokerError`.
        """
        ...

    def open_orders(self) -> Sequence[BrokerOrder]:
        """Every order the venue holds open on this account."""
        ...

    def positions(self) -> Mapping[str, Decimal]:
        """Signed position per symbol, base units (+ long)."""
        ...

    def cancel(self, symbol: str, client_order_id: str) -> None:
        """Cancel what is left of the order (at the bar's fill deadline only)."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitOutcome:
    """What :func:`submit_idempotently` concluded.

    Attributes
    ----------
    state : OrderState
        The order's state as the venue reported it, or ``unknown``/``rejected``.
    order : BrokerOrder or None
        The venue's order; ``None`` only when ``state`` is ``unknown`` (unresolved after every
        lookup) or ``rejected``.
    placed_by_this_call : bool
        Whether this call's submit placed it (false when a lookup found it already there).
    detail : str
        What happened, for the journal (the venue's error, the lookups).
    """

    state: OrderState
    order: BrokerOrder | None
    placed_by_this_call: bool
    detail: str = ""


def submit_idempotently(
    broker: Broker,
    request: OrderRequest,
    *,
    lookups: int = 3,
    delay_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SubmitOutcome:
    """Send ``request`` at most once per client order id, whatever happened before.

    1. Look the id up first: a venue that already holds it (a rerun, a crash after sending,
       Binance's open-only and IB's absent dedup) is answered from the lookup.
    2. Otherwise submit. A duplicate-id error means "it is there": look it up. A rejection is
       final. An ambiguous failure is resolved by up to ``lookups`` lookups ``delay_s`` apart;
       if none finds the order the outcome is ``unknown`` and nothing is resent.
    """
    try:
        existing = broker.lookup(request.symbol, request.client_order_id)
    except AmbiguousBrokerError as exc:
        return SubmitOutcome(
            state=OrderState.UNKNOWN,
            order=None,
            placed_by_this_call=False,
            detail=f"pre-submit lookup failed, not sent: {exc}",
        )
    if existing is not None:
        return SubmitOutcome(
            state=existing.state, order=existing, placed_by_this_call=False, detail="found"
        )
    try:
        placed = broker.submit(request)
    except OrderRejectedError as exc:
        return SubmitOutcome(
            state=OrderState.REJECTED, order=None, placed_by_this_call=False, detail=str(exc)
        )
    except (DuplicateOrderError, AmbiguousBrokerError) as exc:
        reason = str(exc)
        for attempt in range(lookups):
            if attempt or isinstance(exc, AmbiguousBrokerError):
                sleep(delay_s)
            try:
                found = broker.lookup(request.symbol, request.client_order_id)
            except AmbiguousBrokerError as again:
                reason = f"{reason}; lookup {attempt + 1}: {again}"
                continue
            if found is not None:
                return SubmitOutcome(
                    state=found.state,
                    order=found,
                    placed_by_this_call=not isinstance(exc, DuplicateOrderError),
                    detail=f"resolved by lookup after: {exc}",
                )
        return SubmitOutcome(
            state=OrderState.UNKNOWN,
            order=None,
            placed_by_this_call=False,
            detail=f"unresolved after {lookups} lookups: {reason}",
        )
    return SubmitOutcome(state=placed.state, order=placed, placed_by_this_call=True)
