"""Gating (SPEC §7): each strategy's intents against its budget and running virtual positions.

Intents of one strategy are taken in ascending ``intent_id`` order. The part of an intent that
reduces |running position| (an exit, down to flat) always passes; the part that opens or grows
a position passes while the strategy's gross notional Σ |position| × reference price stays
within ``capital × max_leverage``, and the excess is cut to whole lots. A benched or halted
strategy takes no entries; a strategy holding a position in a symbol without a reference price
takes no entries (``no_price``), and no intent opens a position in an unpriced symbol. Each cut
carries its reason as the ``int8`` code of :mod:`allocator.execution.reasons`.

The comparison is exact: notionals are integers in units of ``10**-k`` where ``k`` makes every
lot × price a whole number, and the kernel is one compiled pass over int64 arrays (numba), or the
same code on Python integers when the figures would not fit in 62 bits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, cast

import numpy as np

from allocator.arrays import CodeArray, IntArray
from allocator.execution.book import BarBook
from allocator.execution.reasons import PASSED, Reason
from allocator.execution.records import StrategyBudget
from allocator.states import StrategyState

__all__ = ["GateResult", "gate"]

# The kernel's reason codes (module globals: numba freezes them into the compiled kernel).
_BUDGET = Reason.BUDGET.code
_NO_PRICE = Reason.NO_PRICE.code
_BLOCK_OF_STATE = {
    StrategyState.BENCHED: Reason.BENCHED.code,
    StrategyState.HALTED: Reason.HALTED.code,
}
_INT64_SAFE = 2**62


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class GateResult:
    """What gating decided, per intent of the book (in the book's gating order).

    Attributes
    ----------
    accepted : numpy.ndarray of int64
        Lots that passed, signed like the request, |accepted| <= |requested|.
    reason : numpy.ndarray of int8
        The reason code of each cut (:meth:`Reason.from_code
        <allocator.execution.reasons.Reason.from_code>`); ``0`` when the intent passed whole.
    """

    accepted: IntArray
    reason: CodeArray


def _gate_kernel(
    i_strat: Any,
    i_slot: Any,
    i_lots: Any,
    slot_pos: Any,
    slot_unit: Any,
    slot_priced: Any,
    budget: Any,
    block: Any,
    gross: Any,
    unpriced: Any,
) -> tuple[Any, Any]:
    """Apply the rule one intent at a time; mutates ``slot_pos``, ``gross``, ``unpriced``."""
    n = len(i_lots)
    accepted = np.zeros(n, dtype=np.int64)
    reason = np.zeros(n, dtype=np.int8)
    for t in range(n):
        s = i_strat[t]
        j = i_slot[t]
        q = i_lots[t]
        p = slot_pos[j]
        unit = slot_unit[j]
        priced = slot_priced[j]
        out = 0
        if p > 0 and q < 0:
            out = max(q, -p)
        elif p < 0 and q > 0:
            out = min(q, -p)
        if out != 0:
            p += out
            if priced:
                gross[s] -= abs(out) * unit
            elif p == 0:
                unpriced[s] -= 1
        entry = q - out
        granted = 0
        if entry != 0:
            if block[s] != 0:
                reason[t] = block[s]
            elif unpriced[s] > 0 or not priced:
                reason[t] = _NO_PRICE
            else:
                size = abs(entry)
                room = budget[s] - gross[s]
                if room < size * unit:
                    size = room // unit if room > 0 else 0
                    reason[t] = _BUDGET
                gross[s] += size * unit
                granted = size if entry > 0 else -size
                p += granted
        slot_pos[j] = p
        accepted[t] = out + granted
    return accepted, reason


# Below this many intents the kernel runs as plain Python: the same code, the same int64
# arithmetic (``fits`` rules out overflow), and no numba import or dispatch in a fresh process,
# which costs more (~0.6 s in a new Dagster run worker) than a small bar's whole gating.
SMALL_BAR_INTENTS = 2048


@functools.cache
def _gate_compiled() -> Callable[..., tuple[Any, Any]]:
    import numba

    return cast(Callable[..., tuple[Any, Any]], numba.njit(cache=True, nogil=True)(_gate_kernel))


def _scale(values: list[Decimal]) -> int:
    """Return the smallest ``k`` >= 0 that makes every value × 10**k a whole number."""
    k = 0
    for value in values:
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > k:
            k = -exponent
    return k


def gate(
    book: BarBook,
    budgets: Mapping[str, StrategyBudget] | None,
) -> GateResult:
    """Gate every intent of ``book``.

    ``budgets`` maps a strategy to its published budget; a strategy missing from it has
    capital 0. ``None`` means no budget limit at all (states still apply only through budgets).
    """
    n_sym = len(book.symbols)
    n_strat = len(book.strategies)
    unit_dec: list[Decimal | None] = [
        None if p is None else book.lot_size[m] * p for m, p in enumerate(book.price)
    ]
    k = _scale([u for u in unit_dec if u is not None])
    unit_int = [0 if u is None else int(u.scaleb(k)) for u in unit_dec]
    priced = np.array([u is not None for u in unit_dec], dtype=np.bool_)

    block = np.zeros(n_strat, dtype=np.int8)
    limits: list[Decimal | None] = []
    for code, name in enumerate(book.strategies):
        if budgets is None:
            limits.append(None)
            continue
        plan = budgets.get(name)
        if plan is None:
            limits.append(Decimal(0))
            continue
        block[code] = _BLOCK_OF_STATE.get(plan.state, PASSED)
        limits.append(plan.limit)

    # Choose int64 or exact Python integers from a bound on every gross the kernel can reach.
    unit_f = np.array(unit_int, dtype=np.float64) if n_sym else np.zeros(0)
    reach = np.zeros(n_strat, dtype=np.float64)
    if len(book.pos_lots):
        np.add.at(reach, book.pos_strat, np.abs(book.pos_lots) * unit_f[book.pos_sym])
    if book.n_intents:
        np.add.at(reach, book.i_strat, np.abs(book.i_lots) * unit_f[book.i_sym])
    bound = float(reach.max()) if n_strat else 0.0
    fits = bound < _INT64_SAFE / 4 and max(unit_int, default=0) < _INT64_SAFE / 4
    dtype: Any = np.int64 if fits else object
    cap = _INT64_SAFE if fits else None

    budget_vals: list[int] = []
    for limit in limits:
        if limit is None:
            value = cap if cap is not None else int(bound * 2) + 1
        else:
            value = int(limit.scaleb(k).to_integral_value(rounding=ROUND_FLOOR))
            if cap is not None:
                value = min(value, cap)
        budget_vals.append(max(value, -1))

    units = np.array(unit_int, dtype=dtype) if n_sym else np.zeros(0, dtype=dtype)
    gross = np.zeros(n_strat, dtype=dtype)
    unpriced = np.zeros(n_strat, dtype=np.int64)
    if len(book.pos_lots):
        held_priced = priced[book.pos_sym]
        contrib = np.abs(book.pos_lots).astype(dtype) * units[book.pos_sym]
        np.add.at(gross, book.pos_strat[held_priced], contrib[held_priced])
        np.add.at(unpriced, book.pos_strat[~held_priced], 1)
    slot_unit = units[book.slot_sym] if len(book.slot_sym) else np.zeros(0, dtype=dtype)
    args = (
        book.i_strat,
        book.i_slot,
        book.i_lots if fits else book.i_lots.astype(object),
        book.slot_start.copy() if fits else book.slot_start.astype(object),
        slot_unit,
        priced[book.slot_sym] if len(book.slot_sym) else np.zeros(0, dtype=np.bool_),
        np.array(budget_vals, dtype=dtype),
        block,
        gross,
        unpriced,
    )
    if fits and book.n_intents >= SMALL_BAR_INTENTS:
        accepted, reason = _gate_compiled()(*args)
    else:
        accepted, reason = _gate_kernel(*args)
    return GateResult(
        accepted=np.asarray(accepted, dtype=np.int64), reason=np.asarray(reason, dtype=np.int8)
    )
