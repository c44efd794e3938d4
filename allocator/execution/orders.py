"""Orders at a broker: the records, the broker interface and the one safe submission path.

Everything that talks to a venue (the paper broker, Alpaca, Interactive Brokers, ccxt)
implements :class:`Broker`; everything that sends an order goes through
:func:`submit_idempotently`, which is the only place that decides between "send" and "look it
up" (SPEC §9). Quantities and prices are :class:`~decimal.Decimal`; quantities on orders are
positive with the direction in ``side``; fills carry the venue's own fill id for
deduplication.
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

from allocator.errors import AllocatorError

__all__ = [
    "AmbiguousBrokerError",
    "AssetClass",
    "Broker",
    "BrokerError",
    "BrokerFill",
    "BrokerOrder",
    "DuplicateOrderError",
    "OrderRejectedError",
    "OrderRequest",
    "OrderState",
    "Side",
    "SubmitOutcome",
    "Venue",
    "client_order_id",
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
        return 1 if self is Side.BUY else -1

    @classmethod
    def of(cls, signed_qty: Decimal | int) -> Side:
        if signed_qty == 0:
            raise ValueError("a zero quantity has no side")
        return cls.BUY if signed_qty > 0 else cls.SELL


class OrderState(enum.StrEnum):
    """Lifecycle of an order in the ledger's journal (SPEC §9).

    ``pending_submit`` is written before the order is sent; ``unknown`` means the venue may or
    may not hold it (timeout, 5xx, disconnect) and it must be resolved by a lookup, never by a
    blind resubmit. ``filled``, ``cancelled``, ``rejected`` and ``not_sent`` are final.
    """

    PENDING_SUBMIT = "pending_submit"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATES


_FINAL_STATES = frozenset(
    {OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.NOT_SENT}
)


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
class OrderRequest:
    """A market order to send. ``qty`` is positive, in the instrument's base units (shares,
    contracts, coins); ``reference_price`` is the bar's price used for paper fills and checks."""

    client_order_id: str
    symbol: str
    asset_class: AssetClass
    side: Side
    qty: Decimal
    venue: Venue
    reference_price: Decimal | None = None

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError(f"order {self.client_order_id}: qty must be > 0, got {self.qty}")
        if len(self.client_order_id) > CLIENT_ORDER_ID_LENGTH or not self.client_order_id.isalnum():
            raise ValueError(
                f"client order id {self.client_order_id!r} must be <= 32 characters of [A-Za-z0-9]"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerFill:
    """One execution reported by a venue. ``fill_id`` is the venue's id (dedup key); ``qty`` is
    positive, direction in ``side``; ``fee`` is in the quote currency, >= 0 when paid."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerOrder:
    """The venue's view of one order. ``filled_qty`` is cumulative, ``avg_price`` its volume
    weighted price (``None`` before any fill), ``fee`` the cumulative fee."""

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


class BrokerError(AllocatorError):
    """A broker call failed. Subclasses say whether the outcome is known."""


class OrderRejectedError(BrokerError):
    """Definitive: the venue refused the order (it does not exist there)."""


class DuplicateOrderError(BrokerError):
    """Definitive that an order with this client order id exists at the venue: look it up."""


class AmbiguousBrokerError(BrokerError):
    """Unknown outcome (timeout, 5xx, disconnect, rate limit): the order may have been accepted."""


@runtime_checkable
class Broker(Protocol):
    """What every venue adapter and the paper broker implement."""

    @property
    def name(self) -> str:
        """The venue's name as routing knows it (``alpaca``, ``ibkr``, ``ccxt``, ``paper``)."""
        ...

    def submit(self, request: OrderRequest) -> BrokerOrder:
        """Place a market order; raise :class:`OrderRejectedError`, :class:`DuplicateOrderError`
        or :class:`AmbiguousBrokerError` rather than returning a guess."""
        ...

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        """The venue's order with this client order id, or ``None`` when the venue says it
        does not know it. Transport failures raise :class:`AmbiguousBrokerError`."""
        ...

    def open_orders(self) -> Sequence[BrokerOrder]: ...

    def positions(self) -> Mapping[str, Decimal]:
        """Signed position per symbol (+ long)."""
        ...

    def cancel(self, symbol: str, client_order_id: str) -> None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitOutcome:
    """What :func:`submit_idempotently` concluded. ``order`` is ``None`` only when ``state``
    is ``unknown`` (unresolved after every lookup) or ``rejected``."""

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
