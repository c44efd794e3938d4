"""ccxt failures classified as definitive or ambiguous (SPEC §9).

``NetworkError`` (timeouts, 5xx, disconnects, rate limits) leaves the outcome unknown. A
venue's duplicate-id refusal (Binance ``-2010`` "Duplicate order sent.", Bybit ``110072``,
OKX ``51016``) is surfaced by ccxt as ``InvalidOrder`` and means "look it up". Other
``ExchangeError`` subclasses (``InvalidOrder``, ``InsufficientFunds``, ``AuthenticationError``,
``BadSymbol``, ...) are definitive. A bare ``ExchangeError`` is what ccxt raises for a reply it
does not recognise (e.g. Bybit's error handler turns a 503 with a JSON body into one before the
HTTP status is looked at): its outcome is unknown, so it is ambiguous too.
"""

from __future__ import annotations

import ccxt

from allocator.errors import (
    AmbiguousBrokerError,
    BrokerError,
    DuplicateOrderError,
    OrderRejectedError,
)

__all__ = ["DUPLICATE_MARKERS", "classify"]

DUPLICATE_MARKERS = ("Duplicate order sent", "110072", "OrderLinkedID is duplicate", "51016")


def classify(exc: Exception, venue: str, action: str) -> BrokerError:
    """Our error for an exception raised by ccxt during ``action`` on ``venue``."""
    text = f"{type(exc).__name__}: {str(exc)[:300]}"
    if isinstance(exc, ccxt.NetworkError) or type(exc) is ccxt.ExchangeError:
        return AmbiguousBrokerError(f"{venue} {action}: outcome unknown, {text}")
    if isinstance(exc, ccxt.ExchangeError) and any(m in str(exc) for m in DUPLICATE_MARKERS):
        return DuplicateOrderError(f"{venue} {action}: client order id already used, {text}")
    if isinstance(exc, ccxt.ExchangeError) and action == "submit":
        return OrderRejectedError(f"{venue} {action}: rejected, {text}")
    if isinstance(exc, ccxt.BaseError):
        return BrokerError(f"{venue} {action}: {text}")
    return AmbiguousBrokerError(f"{venue} {action}: unexpected {text}")
