"""Pieces every venue adapter shares: trading mode, rate limiting and instrument rules.

Nothing here talks to a venue. :class:`InstrumentRules` is filled from each venue's own
instrument data (Alpaca assets, ccxt markets, IB contract details) and applied to an order
before it is sent; :class:`RateLimiter` spaces the calls of one adapter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from allocator.errors import ConfigError, OrderRejectedError
from allocator.execution.orders import OrderRequest

__all__ = [
    "InstrumentRules",
    "RateLimiter",
    "TradingMode",
    "check_mode",
    "decimal_text",
    "to_decimal",
]

TradingMode = Literal["paper", "live"]


def check_mode(key: str, mode: str, *, is_live_endpoint: bool, endpoint: str) -> None:
    """The live-mode guard: ``live`` needs the venue's live endpoint and vice versa.

    A base URL other than the venue's live URL is never live; pointing a ``paper`` adapter at
    the live endpoint is refused too, so that real money is only ever reached on purpose.
    """
    if mode not in ("paper", "live"):
        raise ConfigError(f"{key}.mode", f"must be 'paper' or 'live', got {mode!r}")
    if mode == "live" and not is_live_endpoint:
        raise ConfigError(
            f"{key}.mode",
            f"'live' needs the venue's live endpoint, but the adapter points at {endpoint!r}",
        )
    if mode == "paper" and is_live_endpoint:
        raise ConfigError(
            f"{key}.mode",
            f"'paper' mode points at the live endpoint {endpoint!r}; set mode='live' to trade it",
        )


def to_decimal(value: object, what: str) -> Decimal:
    """A venue's number (str, int, float) as an exact :class:`Decimal` via its text form."""
    if value is None or value == "":
        raise ValueError(f"{what}: missing number")
    try:
        result = Decimal(str(value))
    except ArithmeticError as exc:
        raise ValueError(f"{what}: not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"{what}: not a finite number: {value!r}")
    return result


def decimal_text(value: Decimal) -> str:
    """A quantity or price as the exact decimal text a venue receives: ``4``, ``0.00009``.

    Plain notation without trailing zeros, never an exponent and never through a float.
    """
    if not value.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True, kw_only=True, slots=True)
class InstrumentRules:
    """Trading rules of one instrument, from the venue's instrument data.

    ``lot_step`` is the quantity increment (base units), ``min_qty`` the smallest quantity,
    ``tick`` the price increment (informational for market orders, which carry no price) and
    ``min_notional`` the smallest ``qty × price`` in the quote currency (0 when none).
    """

    symbol: str
    lot_step: Decimal
    min_qty: Decimal = Decimal(0)
    tick: Decimal | None = None
    min_notional: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.lot_step <= 0:
            raise ValueError(f"{self.symbol}: lot step must be > 0, got {self.lot_step}")

    def apply(self, request: OrderRequest) -> Decimal:
        """The quantity to send: ``request.qty`` truncated to the lot step.

        Raises :class:`OrderRejectedError` (nothing is sent) when the truncated quantity is
        zero, below ``min_qty``, or when its notional at ``request.reference_price`` is below
        ``min_notional``. Without a reference price the notional check is left to the venue.
        """
        qty = (request.qty / self.lot_step).to_integral_value(rounding=ROUND_DOWN) * self.lot_step
        where = f"order {request.client_order_id} {request.symbol}"
        if qty <= 0:
            raise OrderRejectedError(
                f"{where}: qty {request.qty} rounds down to 0 at lot step {self.lot_step}; not sent"
            )
        if qty < self.min_qty:
            raise OrderRejectedError(
                f"{where}: qty {qty} is below the venue minimum {self.min_qty}; not sent"
            )
        price = request.reference_price
        if price is not None and self.min_notional > 0 and qty * price < self.min_notional:
            raise OrderRejectedError(
                f"{where}: notional {qty * price} is below the venue minimum "
                f"{self.min_notional} (min_notional); not sent"
            )
        return qty


class RateLimiter:
    """At most ``per_minute`` calls per rolling minute, spaced evenly; thread-safe.

    ``acquire`` blocks until the next call may go (a token bucket of capacity ``burst``).
    """

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int = 10,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be >= 1, got {per_minute}")
        self._rate = per_minute / 60.0
        self._capacity = float(max(1, burst))
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) / self._rate
                self._sleep(wait)
                self._last = self._clock()
                self._tokens = 0.0
            else:
                self._tokens -= 1.0
