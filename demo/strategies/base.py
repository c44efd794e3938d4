"""What a reference strategy is: a causal target-weight rule, its own returns, its intents.

A strategy decides at the close of session ``t`` a target weight per symbol (a fraction of its
capital, signed, gross ``Σ|w| <= 1``) from prices through ``t`` only. The demo trades that
decision at the next bar (session ``t + 1``, at its close), so the weights *held* from the close
of ``t`` are the decision of ``t − 1``. The strategy's own daily return — its paper track record
for one unit of capital, which continues whether or not the allocator gives it money — is
``r[t] = Σ_m held[t − 1, m] × (close[t, m] / close[t − 1, m] − 1)``.

Each bar a strategy turns its held weights and its published capital into share targets
(truncated toward zero) and emits one intent per symbol whose position must change by more
than its rebalancing band (a client-side band: it keeps the strategy from paying a minimum fee
for a 1% drift). Intent ids sort exits before entries so that an exit frees budget for the
entries gated after it (SPEC §7 gates a strategy's intents in ascending id order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from allocator.arrays import FloatArray
from allocator.execution.orders import AssetClass
from allocator.execution.records import Bar, Intent

__all__ = ["ReferenceStrategy", "SignalInputs", "held_weights", "own_returns", "share_intents"]


@dataclass(frozen=True, slots=True)
class SignalInputs:
    """Everything a signal may read: ``closes[t, m]`` of ``symbols[m]``, the index level
    ``index[t]`` and the session dates (the trading calendar is known in advance)."""

    sessions: npt.NDArray[np.datetime64]
    symbols: tuple[str, ...]
    closes: FloatArray
    index: FloatArray


Signal = Callable[[SignalInputs], FloatArray]


@dataclass(frozen=True, slots=True)
class ReferenceStrategy:
    """A named, deterministic example client of the allocator.

    ``signal`` returns the ``(sessions, symbols)`` target weights decided at each close from
    data through that close (row ``t`` never reads row ``t + 1``; tests check it by truncating
    the history). ``band`` is the relative drift below which a held position is not traded.
    """

    name: str
    description: str
    signal: Signal
    band: float = 0.25

    def weights(self, data: SignalInputs) -> FloatArray:
        w = np.asarray(self.signal(data), dtype=np.float64)
        if w.shape != data.closes.shape:
            raise ValueError(f"{self.name}: signal shape {w.shape} != {data.closes.shape}")
        gross = np.abs(w).sum(axis=1)
        if not np.all(np.isfinite(w)) or np.any(gross > 1.0 + 1e-12):
            raise ValueError(f"{self.name}: weights must be finite with gross <= 1")
        return w


def held_weights(decided: FloatArray) -> FloatArray:
    """Weights held from the close of ``t``: the decision of ``t − 1`` (zero at ``t = 0``)."""
    held = np.zeros_like(decided)
    held[1:] = decided[:-1]
    return held


def own_returns(held: FloatArray, closes: FloatArray) -> FloatArray:
    """``r[t] = Σ held[t − 1] × asset return[t]``; ``r[0] = 0`` (nothing held before)."""
    r = np.zeros(closes.shape[0])
    asset = closes[1:] / closes[:-1] - 1.0
    r[1:] = np.einsum("tm,tm->t", held[:-1], asset)
    return r


def share_intents(
    *,
    strategy: str,
    bar: Bar,
    weights: FloatArray,
    prices: Sequence[Decimal],
    symbols: Sequence[str],
    capital: Decimal,
    positions: Mapping[str, Decimal],
    band: float,
    asset_class: AssetClass = AssetClass.EQUITY,
) -> list[Intent]:
    """The intents that move ``positions`` (whole shares) to ``weights × capital`` at ``prices``.

    A symbol is traded when it must be opened, closed or flipped, or when the change exceeds
    ``band`` × the target (a drift inside the band is left alone). Exits (moves toward flat)
    get ids that sort before entries.
    """
    out: list[Intent] = []
    for m, symbol in enumerate(symbols):
        held = positions.get(symbol, Decimal(0))
        price = prices[m]
        target = Decimal(int(float(weights[m]) * float(capital) / float(price)))
        delta = target - held
        if delta == 0:
            continue
        opening_or_closing = held == 0 or target == 0 or (held > 0) != (target > 0)
        if not opening_or_closing and abs(delta) < Decimal(repr(band)) * abs(target):
            continue
        reducing = abs(target) < abs(held) and (target == 0 or (target > 0) == (held > 0))
        order = "0" if reducing else "1"
        out.append(
            Intent(
                intent_id=f"{strategy}-{bar.key}-{order}-{symbol}",
                strategy=strategy,
                symbol=symbol,
                asset_class=asset_class,
                qty=delta,
                bar=bar,
            )
        )
    return out
