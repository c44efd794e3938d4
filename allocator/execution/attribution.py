"""Attribution (SPEC §7): each strategy's virtual fill of a symbol's bar.

Per symbol, ``B`` = Σ positive takes, ``S`` = Σ |negative takes|, ``X = min(B, S)`` is crossed
internally, the net order is ``N = |B − S|`` and the broker filled ``F`` of it (0 <= F <= N).

- The smaller side gets its whole takes, crossed internally.
- The larger side shares ``X`` and ``F`` separately, each pro rata to |take| and split to whole
  lots by the largest-remainder method (largest remainder first, ties by strategy name). The
  external split never gives a strategy more than its take: a unit that would overfill goes to
  the next remainder. ``N − F`` stays unfilled.
- The fee, in units of the cash quantum, is shared by the larger side pro rata to the external
  shares by the same method (pro rata to the takes when nothing filled); a part of the fee finer
  than one quantum goes to the strategy ranked first.

Every figure is an integer (lots, fee units), so the invariants are exact: Σ signed fills = the
broker's signed fill, Σ fee shares = the fee.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from allocator.arrays import IntArray
from allocator.execution.book import BarBook
from allocator.execution.netting import Netting

__all__ = ["Attribution", "attribute", "largest_remainder"]

_SAFE = 2**62


def _rank_within(groups_sorted: IntArray) -> IntArray:
    n = len(groups_sorted)
    idx = np.arange(n, dtype=np.int64)
    first = np.zeros(n, dtype=np.int64)
    if n:
        starts = np.flatnonzero(np.r_[True, groups_sorted[1:] != groups_sorted[:-1]])
        first[starts] = starts
        first = np.maximum.accumulate(first)
    return idx - first


def largest_remainder(
    group: IntArray,
    weight: npt.NDArray[Any],
    total: npt.NDArray[Any],
    denom: npt.NDArray[Any],
    tiebreak: IntArray,
    cap: npt.NDArray[Any] | None = None,
) -> npt.NDArray[Any]:
    """Split ``total[g]`` over the members of each group ``g`` pro rata to ``weight / denom[g]``.

    Each member gets ``floor(total × weight / denom)``; the units left go one each to the
    members with the largest remainders (then smallest ``tiebreak``), skipping members already
    at ``cap``. Exact on integers (falls back to Python integers when a product could exceed
    62 bits). Requires Σ weight = denom per group (or denom = 0, which gives 0).
    """
    n = len(group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    tg = total[group]
    dg = denom[group]
    peak = int(np.max(np.abs(tg))) * int(np.max(np.abs(weight)))
    exact_int = peak < _SAFE
    if not exact_int:
        tg, dg, weight = tg.astype(object), dg.astype(object), weight.astype(object)
    positive = dg > 0
    safe_d = np.where(positive, dg, 1)
    num = tg * weight
    base = np.where(positive, num // safe_d, 0)
    rem = np.where(positive, num % safe_d, 0)
    if not exact_int:
        base = base.astype(np.int64) if int(np.max(np.abs(base))) < _SAFE else base
        rem = rem.astype(np.int64)
    n_groups = len(total)
    given = np.zeros(n_groups, dtype=base.dtype)
    np.add.at(given, group, base)
    left = np.where(denom > 0, total - given, 0)
    eligible = np.ones(n, dtype=np.bool_) if cap is None else (base < cap)
    order = np.lexsort((tiebreak, -rem.astype(np.int64), ~eligible, group))
    g_sorted = group[order]
    rank = _rank_within(g_sorted)
    give = (rank < left[g_sorted].astype(np.int64)) & eligible[order]
    out = base.copy()
    out[order[give]] += 1
    return out


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Attribution:
    """One bar's lots and fee split over its slots; every array is indexed by slot.

    Attributes
    ----------
    internal : IntArray
        Lots crossed internally with the other side (signed, + bought).
    external : IntArray
        Lots of the broker's fill given to the slot (signed, + bought).
    fee_units : numpy.ndarray
        The slot's share of the broker fee in whole units of the cash quantum (>= 0).
    """

    internal: IntArray
    external: IntArray
    fee_units: npt.NDArray[Any]


def attribute(
    book: BarBook,
    netting: Netting,
    filled: IntArray,
    fee_units: npt.NDArray[Any],
) -> Attribution:
    """Split each symbol's crossed lots, broker fill and fee over its strategies.

    ``filled`` is the broker's fill per symbol (lots, unsigned, at most |net|); ``fee_units``
    the fee per symbol (whole units of the cash quantum, >= 0).
    """
    take = netting.take
    sym = book.slot_sym
    net = netting.net
    if np.any(filled < 0) or np.any(filled > np.abs(net)):
        bad = int(np.flatnonzero((filled < 0) | (filled > np.abs(net)))[0])
        raise ValueError(
            f"{book.symbols[bad]}: filled {filled[bad]} lots outside 0..{abs(int(net[bad]))}"
        )
    direction = np.sign(net)
    d_slot = direction[sym]
    larger = (d_slot != 0) & (np.sign(take) == d_slot)
    mag = np.abs(take)
    internal = np.where(larger, 0, take)
    external = np.zeros(len(take), dtype=np.int64)
    fees = np.zeros(len(take), dtype=fee_units.dtype)
    idx = np.flatnonzero(larger)
    if len(idx):
        grp = sym[idx]
        w = mag[idx]
        heavy = np.maximum(netting.buy, netting.sell)
        tie = book.slot_strat[idx]
        x_share = largest_remainder(grp, w, netting.crossed, heavy, tie)
        f_share = largest_remainder(grp, w, filled, heavy, tie, cap=w - x_share)
        sign = d_slot[idx]
        internal[idx] = sign * x_share
        external[idx] = sign * f_share
        fee_w = np.where(filled[grp] > 0, f_share, w)
        fee_d = np.where(filled > 0, filled, heavy)
        fees[idx] = largest_remainder(grp, fee_w, fee_units, fee_d, tie)
    unpaid = (fee_units > 0) & (direction == 0)
    if np.any(unpaid):
        bad = int(np.flatnonzero(unpaid)[0])
        raise ValueError(f"{book.symbols[bad]}: a fee with no net order to charge it to")
    return Attribution(internal=internal, external=external, fee_units=fees)
