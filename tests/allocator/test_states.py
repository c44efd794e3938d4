"""The strategy-state vocabulary: the breaker's three, the published four, one derivation."""

from __future__ import annotations

import pytest

from allocator.states import BreakerState, StrategyState, published_state


def test_stored_names_and_array_codes_are_stable() -> None:
    # What allocations.breaker_state, allocations.csv and the events store: never changed.
    assert [(int(s), s.label) for s in BreakerState] == [(0, "normal"), (1, "half"), (2, "halted")]
    assert [s.value for s in StrategyState] == ["normal", "half", "halted", "benched"]
    for state in BreakerState:
        assert state.state.value == state.label
        assert BreakerState.of_label(state.label) is state


@pytest.mark.parametrize(
    ("breaker", "benched", "published"),
    [
        (BreakerState.NORMAL, False, StrategyState.NORMAL),
        (BreakerState.HALF, False, StrategyState.HALF),
        (BreakerState.HALTED, False, StrategyState.HALTED),
        # The breaker runs for benched strategies too (SPEC §5); benched wins (SPEC §3, §6).
        (BreakerState.NORMAL, True, StrategyState.BENCHED),
        (BreakerState.HALF, True, StrategyState.BENCHED),
        (BreakerState.HALTED, True, StrategyState.BENCHED),
        ("half", False, StrategyState.HALF),  # as the ledger stores it
        ("halted", True, StrategyState.BENCHED),
    ],
)
def test_published_state(
    breaker: BreakerState | str, benched: bool, published: StrategyState
) -> None:
    assert published_state(breaker, benched) is published


def test_a_stored_label_outside_the_breaker_states_is_an_error() -> None:
    with pytest.raises(ValueError, match="'benched' is not a breaker state"):
        published_state("benched", False)
    with pytest.raises(ValueError, match="'paused' is not a breaker state"):
        BreakerState.of_label("paused")


def test_only_normal_and_half_take_entries() -> None:
    assert {s for s in StrategyState if s.takes_entries} == {
        StrategyState.NORMAL,
        StrategyState.HALF,
    }
