"""A strategy's state: the breaker's three and the published four (SPEC §3, §5, §6, §7).

Two views of one vocabulary, spelled once (the strings are :class:`StrategyState`'s values):

* :class:`BreakerState` is the drawdown breaker's state machine (SPEC §5: ``normal``, ``half``,
  ``halted``) with stable integer codes, because the replay keeps one code per strategy and
  session in ``int8`` arrays. Its ``label`` is the matching :class:`StrategyState` value, which
  is what the ledger's ``allocations.breaker_state`` column, ``allocations.csv`` and the
  breaker's events (``"normal->half"``) store.
* :class:`StrategyState` is the state a strategy is published with for the next bar and that
  gating reads (SPEC §7): the breaker's state, or ``benched`` when the correlation rule has
  benched it.

:func:`published_state` is the one way from (breaker state, benched) to the published state:
``benched`` wins whatever the breaker says. Why: SPEC §5 runs the breaker for benched
strategies too, so both facts are stored side by side (``breaker_state``, ``benched``), and
SPEC §3/§6 give a benched strategy weight 0 whatever its breaker state. Gating treats
``benched`` and ``halted`` alike (no entries) but reports them as different reasons, so the
published state keeps them apart. Stored values never change: the ledger keeps the breaker's
label and the benched flag, not the derived state.
"""

from __future__ import annotations

import enum

__all__ = ["BreakerState", "StrategyState", "TradingState", "published_state"]


class StrategyState(enum.StrEnum):
    """The published state of a strategy that gating reads (SPEC §3, §5, §7).

    ``normal`` and ``half`` take entries (``half`` within a budget already halved by the
    breaker's multiplier); ``halted`` and ``benched`` take none (capital 0); exits always pass.
    """

    NORMAL = "normal"
    HALF = "half"
    HALTED = "halted"
    BENCHED = "benched"

    @property
    def takes_entries(self) -> bool:
        """Whether a strategy in this state may open or grow a position."""
        return self is not StrategyState.HALTED and self is not StrategyState.BENCHED


class BreakerState(enum.IntEnum):
    """The drawdown breaker's states (SPEC §5); the integer codes are stable (used in arrays)."""

    NORMAL = 0
    HALF = 1
    HALTED = 2

    @property
    def state(self) -> StrategyState:
        """The same state in the published vocabulary."""
        return StrategyState[self.name]

    @property
    def label(self) -> str:
        """The stored name: ``normal``, ``half`` or ``halted``."""
        return self.state.value

    @classmethod
    def of_label(cls, label: str) -> BreakerState:
        """Parse a stored label (``"half"``); ``ValueError`` for anything else."""
        for member in cls:
            if member.label == label:
                return member
        raise ValueError(f"{label!r} is not a breaker state ({', '.join(m.label for m in cls)})")


def published_state(breaker: BreakerState | str, benched: bool) -> StrategyState:
    """Derive the published state: ``benched`` if benched, else the breaker's state.

    Parameters
    ----------
    breaker : BreakerState or str
        The breaker's state after the session, or its stored label (``"half"``).
    benched : bool
        Whether the correlation rule has the strategy benched after the session.

    Returns
    -------
    StrategyState
        ``BENCHED`` when ``benched``, else the breaker's state.
    """
    if benched:
        return StrategyState.BENCHED
    state = breaker if isinstance(breaker, BreakerState) else BreakerState.of_label(breaker)
    return state.state


class TradingState(enum.StrEnum):
    """The book's trading state, and each venue's (docs/spec-12-risk.md §12.5).

    ``active``: the risk stage's limits apply, nothing more; ``reducing``: exits only, for
    every strategy, and no symbol's net position grows; ``halted``: nothing is sent. The
    stricter of the book's and a venue's state applies to the venue's intents.
    """

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"

    @property
    def rank(self) -> int:
        """How strict the state is: 0 active, 1 reducing, 2 halted."""
        return _TRADING_RANK[self]

    def stricter(self, other: TradingState) -> TradingState:
        """Return the stricter of ``self`` and ``other``."""
        return other if other.rank > self.rank else self


_TRADING_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
