"""Six reference strategies: examples of the allocator's clients, not the product.

Each is pure and deterministic: a causal target-weight rule over the bundled daily closes
(:mod:`demo.strategies.reference`), from which come its own daily returns (the rules'
inputs) and, every bar, its intents (:mod:`demo.strategies.base`).
"""

from demo.strategies.base import (
    ReferenceStrategy,
    SignalInputs,
    held_weights,
    own_returns,
    share_intents,
)
from demo.strategies.reference import REFERENCE_STRATEGIES

__all__ = [
    "REFERENCE_STRATEGIES",
    "ReferenceStrategy",
    "SignalInputs",
    "held_weights",
    "own_returns",
    "share_intents",
]
