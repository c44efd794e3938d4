"""``risk_stage_overhead``: what the pre-trade risk stage adds to the hot path's bar.

The bar of ``bench_hot_path.py`` (100 strategies × 1,000 symbols = 100,000 intents, random
start positions, budgets that cut, a full fill with a fee per symbol): gating + netting +
attribution, timed without the risk stage (the baseline) and with it, in the same run,
interleaved, the fastest run of each (on a shared machine other processes only add time).
With it, every limit of ``[risk]`` is set (docs/spec-12-risk.md): the price collar is
evaluated for every symbol (fresh prices: none refused); ``max_orders_per_bar``,
``max_symbol_position``, ``max_order_qty``, ``max_gross_exposure`` and Alpaca's order rate
are set but do not bind; ``max_order_notional`` is set at the 99th percentile of the bar's
net orders' notional, so it cuts about one symbol in a hundred (the cut path runs too). The
outputs are checked: no net order exceeds the cap.

Prints one JSON line ``{"name": "risk_stage_overhead", "value": fraction added, "unit":
"fraction", "baseline": the bar without the stage (ms), "ratio": with / without}``.
Goal: value <= 0.10.

Run: ``python benchmarks/bench_risk.py [--strategies N] [--symbols M] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_hot_path import make_bar

from allocator.config import RiskConfig, VenueRiskLimits
from allocator.execution import attribute, build_book, gate, net_takes
from allocator.execution.instruments import Instrument
from allocator.execution.orders import AssetClass, Venue
from allocator.execution.risk import RiskInputs, apply_limits, collar_note, oldest_fresh

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def _risk(bar: dict[str, Any], notional_cap: Decimal) -> RiskInputs:
    prices = bar["prices"]
    return RiskInputs(
        config=RiskConfig(
            max_order_notional=notional_cap,
            max_order_qty=Decimal(10**6),
            max_symbol_position=Decimal(10**9),
            max_gross_exposure=Decimal(100),
            max_price_age_s=60.0,
            max_price_move=Decimal("0.5"),
            max_orders_per_bar=10**6,
            venues={"alpaca": VenueRiskLimits(orders_per_minute=10**6)},
        ),
        planned_at=NOW,
        price_times={m: NOW - timedelta(seconds=5) for m in prices},
        previous_prices=dict(prices),
    )


def run(
    bar: dict[str, Any], risk: RiskInputs | None, instruments: tuple[Instrument, ...] = ()
) -> tuple[Any, Any]:
    book = build_book(
        bar["intents"], lot_size=bar["lot_size"], prices=bar["prices"], positions=bar["positions"]
    )
    gated = gate(book, bar["budgets"])
    accepted = gated.accepted
    if risk is not None:
        # The stage's two halves on this bar: the collar of every symbol (none stale here, so
        # no intent is cut to its exit), then the limits between gating and netting.
        oldest = oldest_fresh(risk)
        stale = [
            m
            for m, p in zip(book.symbols, book.price, strict=True)
            if collar_note(risk, m, p, oldest=oldest)
        ]
        assert not stale
        venues = (Venue.ALPACA,) * len(book.symbols)
        accepted, _, _ = apply_limits(
            book,
            instruments,
            venues,
            accepted,
            gated.reason,
            risk=risk,
            total_capital=Decimal(10**9),
        )
    netting = net_takes(book, accepted)
    filled = np.abs(netting.net)
    fees = np.where(filled > 0, bar["fee_units"][: len(book.symbols)], 0)
    result = attribute(book, netting, filled, fees)
    return book, (netting, result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--strategies", type=int, default=100)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args(argv)
    bar = make_bar(args.strategies, args.symbols)
    # The symbol table, built once: plan_bar has it before the stage runs.
    table = tuple(
        Instrument(symbol=m, asset_class=AssetClass.EQUITY, lot_size=bar["lot_size"][m])
        for m in sorted(bar["prices"])
    )
    book, (plain, _) = run(bar, None)  # warm-up (the cached compiled gating kernel)
    # The notional cap at the 99th percentile of the bar's net orders: it cuts about 1 in 100.
    notionals = sorted(
        abs(int(plain.net[m])) * book.lot_size[m] * p
        for m, p in enumerate(book.price)
        if p is not None
    )
    risk = _risk(bar, notionals[int(len(notionals) * 0.99)].quantize(Decimal(1)))
    run(bar, risk, table)
    base: list[float] = []
    staged: list[float] = []
    for _ in range(args.repeat):
        for target, inputs in ((base, None), (staged, risk)):
            start = time.perf_counter()
            run(bar, inputs, table)
            target.append(time.perf_counter() - start)
    book, (netting, _) = run(bar, risk, table)
    cap = risk.config.max_order_notional
    assert cap is not None
    capped = 0
    for m, price in enumerate(book.price):
        assert price is not None
        assert abs(int(netting.net[m])) * book.lot_size[m] * price <= cap
        capped += abs(int(plain.net[m])) * book.lot_size[m] * price > cap
    # The fastest of the interleaved runs (timeit's advice: the least disturbed figure).
    base_ms = min(base) * 1000
    staged_ms = min(staged) * 1000
    print(
        json.dumps(
            {
                "name": "risk_stage_overhead",
                "value": round(staged_ms / base_ms - 1, 4),
                "unit": "fraction",
                "baseline": round(base_ms, 3),
                "ratio": round(staged_ms / base_ms, 4),
                "with_risk_ms": round(staged_ms, 3),
                "intents": args.strategies * args.symbols,
                "symbols_capped": int(capped),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
