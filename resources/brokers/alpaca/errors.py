"""Alpaca failures classified as definitive or ambiguous (SPEC §9).

alpaca-py raises ``APIError`` for an HTTP error reply and lets ``requests`` exceptions through
for transport failures; ``APIError.code`` raises ``KeyError`` when the body has no code, so the
body is parsed here instead.
"""

from __future__ import annotations

import json

import requests
from alpaca.common.exceptions import APIError

from allocator.errors import (
    AmbiguousBrokerError,
    BrokerError,
    DuplicateOrderError,
    OrderRejectedError,
)

__all__ = ["DUPLICATE_CLIENT_ORDER_ID", "NOT_FOUND", "classify", "error_code"]

DUPLICATE_CLIENT_ORDER_ID = 40010001
NOT_FOUND = 40410000
_AMBIGUOUS_STATUSES = {408, 429}


def error_code(exc: APIError) -> int | None:
    """The ``code`` of Alpaca's error body, or ``None`` when the body has none."""
    try:
        body = json.loads(str(exc._error))
    except (TypeError, ValueError):
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def _message(exc: APIError) -> str:
    status = exc.status_code
    return f"HTTP {status}: {str(exc._error)[:300]}"


def classify(exc: Exception, action: str) -> BrokerError:
    """Our error for an exception raised by alpaca-py during ``action``.

    Transport failures, 408, 429 and 5xx are ambiguous (the venue may have acted); a reused
    client order id is a :class:`DuplicateOrderError`; another 4xx reply to an order is a
    rejection; another 4xx elsewhere is a definitive :class:`BrokerError`.
    """
    if isinstance(exc, requests.Timeout):
        return AmbiguousBrokerError(f"alpaca {action}: no answer in time ({exc})")
    if isinstance(exc, requests.RequestException):
        return AmbiguousBrokerError(f"alpaca {action}: connection failed ({exc})")
    if isinstance(exc, APIError):
        status = exc.status_code
        if status is None or status in _AMBIGUOUS_STATUSES or status >= 500:
            return AmbiguousBrokerError(f"alpaca {action}: {_message(exc)}")
        if error_code(exc) == DUPLICATE_CLIENT_ORDER_ID:
            return DuplicateOrderError(f"alpaca {action}: {_message(exc)}")
        if action == "submit":
            return OrderRejectedError(f"alpaca {action}: rejected, {_message(exc)}")
        return BrokerError(f"alpaca {action}: {_message(exc)}")
    return AmbiguousBrokerError(f"alpaca {action}: unexpected {type(exc).__name__}: {exc}")
