"""``hot_path_vs_loop``: gating + netting + attribution of one bar, vectorised vs a plain loop.

100 strategies × 1,000 symbols = 100,000 intents, random start positions, budgets that cut,
a full broker fill with a fee per symbol. The vectorised core (``allocator.execution``: the
columnar book, the compiled gating pass, numpy netting and largest-remainder attribution) is
timed against ``hot_path_loop.reference_bar`` on the same bar, and their outputs are checked to
be identical before any figure is printed. Prints one JSON object per line:
``{"name", "value", "unit", "baseline", "ratio"}``. Goals: ratio >= 5, the bar < 100 ms.

Run: ``python benchmarks/bench_hot_path.py [--strategies N] [--symbols M] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hot_path_loop import reference_bar

from allocator.execution import (
    Reason,
    StrategyBudget,
    attribute,
    build_book,
    gate,
    net_takes,
)


def make_bar(n_strat: int, n_sym: int, seed: int = 7) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    strategies = [f"S{k:03d}" for k in range(n_strat)]
    symbols = [f"X{k:04d}" for k in range(n_sym)]
    strat_col = np.repeat(np.arange(n_strat), n_sym)
    sym_col = np.tile(np.arange(n_sym), n_strat)
    lots = rng.integers(-50, 51, size=n_strat * n_sym)
    lots[lots == 0] = 1
    ids = [f"{strategies[s]}-{rng.integers(0, 10**9):09d}-{k}" for k, s in enumerate(strat_col)]
    intents = pl.DataFrame(
        {
            "intent_id": ids,
            "strategy": [strategies[s] for s in strat_col],
            "symbol": [symbols[m] for m in sym_col],
            "lots": lots.astype(np.int64),
        }
    )
    held = rng.random(n_strat * n_sym) < 0.3
    pos_lots = rng.integers(-40, 41, size=n_strat * n_sym)
    keep = held & (pos_lots != 0)
    positions = pl.DataFrame(
        {
            "strategy": [strategies[s] for s in strat_col[keep]],
            "symbol": [symbols[m] for m in sym_col[keep]],
            "lots": pos_lots[keep].astype(np.int64),
        }
    )
    cents = rng.integers(100, 50_000, size=n_sym)
    prices = {m: Decimal(int(c)) / 100 for m, c in zip(symbols, cents, strict=True)}
    lot_size = {m: Decimal(1) for m in symbols}
    budgets = {
        s: StrategyBudget(capital=Decimal(int(c)), max_leverage=Decimal(1))
        for s, c in zip(strategies, rng.integers(500_000, 3_000_000, size=n_strat), strict=True)
    }
    fee_units = rng.integers(0, 10**8, size=n_sym).astype(np.int64)
    return {
        "intents": intents,
        "positions": positions,
        "prices": prices,
        "lot_size": lot_size,
        "budgets": budgets,
        "fee_units": fee_units,
    }


def vectorised(bar: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    book = build_book(
        bar["intents"], lot_size=bar["lot_size"], prices=bar["prices"], positions=bar["positions"]
    )
    gated = gate(book, bar["budgets"])
    netting = net_takes(book, gated.accepted)
    filled = np.abs(netting.net)
    fees = np.where(filled > 0, bar["fee_units"][: len(book.symbols)], 0)
    result = attribute(book, netting, filled, fees)
    return book, gated, result, fees


def loop(bar: dict[str, Any]) -> tuple[Any, Any]:
    intents = list(bar["intents"].iter_rows())
    positions = {(s, m): q for s, m, q in bar["positions"].iter_rows()}
    unit = {m: bar["lot_size"][m] * p for m, p in bar["prices"].items()}
    limits = {s: b.capital * b.max_leverage for s, b in bar["budgets"].items()}
    symbols = sorted(bar["prices"])
    fee_units = {m: int(bar["fee_units"][k]) for k, m in enumerate(symbols)}
    # The loop's broker fills every net order in full, like the vectorised run's.
    return reference_bar(intents, positions, unit, limits, {}, None, fee_units)


def check_identical(
    bar: dict[str, Any], fast: tuple[Any, Any, Any, Any], slow: tuple[Any, Any]
) -> None:
    book, gated, result, _ = fast
    outcome, shares = slow
    for t, intent_id in enumerate(book.intent_ids.to_list()):
        want = outcome[intent_id]
        # A Reason equals its stored name, the loop's vocabulary ("budget").
        got = (int(gated.accepted[t]), Reason.from_code(int(gated.reason[t])))
        if got != want:
            raise AssertionError(f"intent {intent_id}: vectorised {got} != loop {want}")
    for j in range(len(book.slot_sym)):
        key = (book.strategies[int(book.slot_strat[j])], book.symbols[int(book.slot_sym[j])])
        got3 = (int(result.internal[j]), int(result.external[j]), int(result.fee_units[j]))
        if got3 != shares.get(key, (0, 0, 0)):
            raise AssertionError(f"{key}: vectorised {got3} != loop {shares.get(key)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--strategies", type=int, default=100)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    bar = make_bar(args.strategies, args.symbols)
    fast = vectorised(bar)  # warm-up (loads the cached compiled kernel)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        fast = vectorised(bar)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    slow = loop(bar)
    loop_s = time.perf_counter() - start
    check_identical(bar, fast, slow)
    fast_ms = statistics.median(times) * 1000
    loop_ms = loop_s * 1000
    n = args.strategies * args.symbols
    print(
        json.dumps(
            {
                "name": "hot_path_vs_loop",
                "value": round(fast_ms, 3),
                "unit": "ms",
                "baseline": round(loop_ms, 3),
                "ratio": round(loop_ms / fast_ms, 2),
                "intents": n,
            }
        )
    )
    print(
        json.dumps(
            {
                "name": "hot_path_bar_ms",
                "value": round(fast_ms, 3),
                "unit": "ms",
                "baseline": 100.0,
                "ratio": round(100.0 / fast_ms, 2),
                "intents": n,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
