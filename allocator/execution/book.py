"""The columnar form of one bar that gating, netting and attribution work on.

Strategies and symbols are coded by their position in name order (so that "ties by strategy
name" is "ties by code"); quantities are whole numbers of the symbol's lot (``int64``), which
makes the quantity arithmetic exact. A *slot* is one (strategy, symbol) pair that has intents in
this bar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import polars as pl

from allocator.arrays import IntArray

__all__ = ["BarBook", "build_book", "lots_of"]


def lots_of(qty: Decimal, lot_size: Decimal, where: str) -> int:
    """``qty`` as a whole number of lots; ``ValueError`` naming ``where`` when it is not."""
    lots, rest = divmod(qty, lot_size)
    if rest != 0:
        raise ValueError(f"{where}: quantity {qty} is not a multiple of the lot size {lot_size}")
    return int(lots)


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class BarBook:
    """One bar in columns. Intent arrays are sorted by (strategy, intent_id) — the gating order.

    ``price[m]`` is the reference price of symbol ``m`` (``None``: no price this bar);
    ``lot_size[m]`` its lot. ``pos_*`` list every non-zero start position (lots);
    ``slot_start`` is the start position of each slot.
    """

    strategies: tuple[str, ...]
    symbols: tuple[str, ...]
    lot_size: tuple[Decimal, ...]
    price: tuple[Decimal | None, ...]
    intent_ids: pl.Series
    i_strat: IntArray
    i_sym: IntArray
    i_lots: IntArray
    i_slot: IntArray
    slot_strat: IntArray
    slot_sym: IntArray
    slot_start: IntArray
    pos_strat: IntArray
    pos_sym: IntArray
    pos_lots: IntArray

    @property
    def n_intents(self) -> int:
        """Number of intents in the bar."""
        return len(self.intent_ids)

    def qty(self, symbol_code: int, lots: int) -> Decimal:
        """``lots`` of symbol ``symbol_code`` in base units."""
        return lots * self.lot_size[symbol_code]


def build_book(
    intents: pl.DataFrame,
    *,
    lot_size: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    positions: pl.DataFrame | None = None,
    strategies: Sequence[str] = (),
) -> BarBook:
    """Build the book from columns.

    ``intents``: ``intent_id`` (str), ``strategy`` (str), ``symbol`` (str), ``lots`` (int64,
    signed, non-zero). ``positions``: ``strategy``, ``symbol``, ``lots`` (signed start
    positions in lots of ``lot_size``). Every symbol of either must be in ``lot_size``.
    ``strategies`` adds names that have neither (they still get a code).
    """
    pos = (
        positions
        if positions is not None
        else pl.DataFrame(
            {"strategy": [], "symbol": [], "lots": []},
            schema={"strategy": pl.String, "symbol": pl.String, "lots": pl.Int64},
        )
    ).filter(pl.col("lots") != 0)
    strategy_names = sorted(
        set(intents["strategy"].unique().to_list())
        | set(pos["strategy"].unique().to_list())
        | set(strategies)
    )
    symbol_names = sorted(
        set(intents["symbol"].unique().to_list()) | set(pos["symbol"].unique().to_list())
    )
    missing = [s for s in symbol_names if s not in lot_size]
    if missing:
        raise ValueError(f"no lot size for symbol(s) {', '.join(missing[:5])}")
    strat_enum = pl.Enum(strategy_names)
    sym_enum = pl.Enum(symbol_names)
    coded = intents.select(
        pl.col("intent_id").cast(pl.String),
        pl.col("strategy").cast(strat_enum).to_physical().cast(pl.Int64).alias("s"),
        pl.col("symbol").cast(sym_enum).to_physical().cast(pl.Int64).alias("m"),
        pl.col("lots").cast(pl.Int64),
    )
    if coded["intent_id"].n_unique() != coded.height:
        raise ValueError("intent ids must be unique within a bar")
    # Gating order (strategy, intent_id): sort the ids (code-point order), then a stable sort
    # by strategy code; cheaper than one two-key sort on strings.
    by_id = coded["intent_id"].arg_sort().to_numpy()
    s_all = coded["s"].to_numpy()
    order = by_id[np.argsort(s_all[by_id], kind="stable")]
    pos_coded = pos.select(
        pl.col("strategy").cast(strat_enum).to_physical().cast(pl.Int64).alias("s"),
        pl.col("symbol").cast(sym_enum).to_physical().cast(pl.Int64).alias("m"),
        pl.col("lots").cast(pl.Int64),
    )
    n_sym = max(len(symbol_names), 1)
    i_strat = s_all[order].astype(np.int64, copy=False)
    i_sym = coded["m"].to_numpy()[order].astype(np.int64, copy=False)
    keys = i_strat * n_sym + i_sym
    slot_keys, i_slot = np.unique(keys, return_inverse=True)
    p_strat = pos_coded["s"].to_numpy().astype(np.int64, copy=False)
    p_sym = pos_coded["m"].to_numpy().astype(np.int64, copy=False)
    p_lots = pos_coded["lots"].to_numpy().astype(np.int64, copy=False)
    p_keys = p_strat * n_sym + p_sym
    slot_start = np.zeros(len(slot_keys), dtype=np.int64)
    if len(p_keys):
        where = np.searchsorted(slot_keys, p_keys)
        where_c = np.minimum(where, max(len(slot_keys) - 1, 0))
        hit = (
            (where < len(slot_keys)) & (slot_keys[where_c] == p_keys)
            if len(slot_keys)
            else (np.zeros(len(p_keys), dtype=bool))
        )
        np.add.at(slot_start, where[hit], p_lots[hit])
    return BarBook(
        strategies=tuple(strategy_names),
        symbols=tuple(symbol_names),
        lot_size=tuple(lot_size[s] for s in symbol_names),
        price=tuple(prices.get(s) for s in symbol_names),
        intent_ids=coded["intent_id"].gather(order),
        i_strat=i_strat,
        i_sym=i_sym,
        i_lots=coded["lots"].to_numpy()[order].astype(np.int64, copy=False),
        i_slot=i_slot.astype(np.int64, copy=False),
        slot_strat=(slot_keys // n_sym).astype(np.int64, copy=False),
        slot_sym=(slot_keys % n_sym).astype(np.int64, copy=False),
        slot_start=slot_start,
        pos_strat=p_strat,
        pos_sym=p_sym,
        pos_lots=p_lots,
    )
