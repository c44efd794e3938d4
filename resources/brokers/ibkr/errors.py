"""IB outcomes classified as definitive or ambiguous.

Error 201 (order rejected) ends an order definitively; 202 is a cancel. Codes 2100-2199, 399
and 404 are warnings: the order stays live. A lost connection or no status within the timeout
leaves the outcome unknown.
"""

from __future__ import annotations

__all__ = ["REJECTED", "WARNING_CODES", "is_warning"]

REJECTED = 201
CANCELLED = 202
WARNING_CODES = frozenset({399, 404, 10167, 10168})


def is_warning(code: int) -> bool:
    return 2100 <= code <= 2199 or code in WARNING_CODES
