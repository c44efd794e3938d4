"""The reference strategies: causal, bounded, their own returns and intents as documented."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from allocator.execution.records import Bar
from demo.marketdata import load_sp500
from demo.strategies import (
    REFERENCE_STRATEGIES,
    SignalInputs,
    held_weights,
    own_returns,
    share_intents,
)

MARKET = load_sp500()
FULL = SignalInputs(MARKET.sessions, MARKET.symbols, MARKET.closes, MARKET.index)


@pytest.mark.parametrize("strategy", REFERENCE_STRATEGIES, ids=lambda s: s.name)
def test_weights_are_causal_and_bounded(strategy: object) -> None:
    full = strategy.weights(FULL)  # type: ignore[attr-defined]
    cut = 5_000  # decisions up to the cut must not change when later prices are removed
    head = SignalInputs(
        MARKET.sessions[:cut], MARKET.symbols, MARKET.closes[:cut], MARKET.index[:cut]
    )
    prefix = strategy.weights(head)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(prefix, full[:cut])
    assert np.all(np.abs(full).sum(axis=1) <= 1 + 1e-12)
    assert np.abs(full).sum() > 0


def test_own_returns_match_a_pandas_rewrite() -> None:
    momentum = next(s for s in REFERENCE_STRATEGIES if s.name == "momentum")
    held = held_weights(momentum.weights(FULL))
    closes = pd.DataFrame(MARKET.closes)
    expected = (closes.pct_change() * pd.DataFrame(held).shift(1)).sum(axis=1).to_numpy()
    np.testing.assert_allclose(own_returns(held, MARKET.closes), expected, rtol=0, atol=1e-15)


def test_share_intents_reach_the_target_and_sort_exits_first() -> None:
    weights = np.zeros(len(MARKET.symbols))
    ko, pep, aapl = (MARKET.symbols.index(s) for s in ("KO", "PEP", "AAPL"))
    weights[ko], weights[pep] = 0.5, -0.5
    prices = [Decimal("10")] * len(MARKET.symbols)
    held = {"AAPL": Decimal(30), "KO": Decimal(480)}  # KO inside the 25% band of 500
    intents = share_intents(
        strategy="pairs",
        bar=Bar("2009-01-02"),
        weights=weights,
        prices=prices,
        symbols=MARKET.symbols,
        capital=Decimal(10_000),
        positions=held,
        band=0.25,
    )
    by_symbol = {i.symbol: i for i in intents}
    assert set(by_symbol) == {"AAPL", "PEP"}
    assert by_symbol["AAPL"].qty == -30
    assert by_symbol["PEP"].qty == -500
    assert sorted(i.intent_id for i in intents)[0] == by_symbol["AAPL"].intent_id  # exit first
    assert aapl != ko
