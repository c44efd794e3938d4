"""One bar's orders sent concurrently vs one by one (``make bench``): one JSON line.

``bar_submit_concurrent``: a bar of 60 market orders (20 per venue) over three local fake
venues — Alpaca through alpaca-py (``tests/fakes/fake_alpaca.py``), Binance and Bybit through
ccxt (``tests/fakes/fake_binance.py``, ``fake_bybit.py``) — every request answered 50 ms late
(a venue far away). Each order goes through the real adapter and
:func:`allocator.execution.lifecycle.execute_orders`: lookup first, submit, read back, follow
to final. Measured in the same run: the bar with ``max_workers=1`` (one by one, the baseline)
and with one worker per order (concurrent). The adapters' own rate limits are opened wide for
the fakes (Alpaca's 200/min would otherwise be the figure), and the instrument rules are
loaded before either pass (a running code location has them cached). The fakes run in a
subprocess of their own, so their request handling does not share this process's GIL.

Goal: ratio (one by one / concurrent) >= 5 and the concurrent bar under 1 s.

Usage: python benchmarks/bench_submit.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from decimal import Decimal
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

with warnings.catch_warnings():  # alpaca-py imports websockets.legacy (a DeprecationWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    from resources.brokers.alpaca import AlpacaBroker

from allocator.execution.lifecycle import execute_orders  # noqa: E402
from allocator.execution.orders import (  # noqa: E402
    AssetClass,
    Broker,
    NetOrder,
    OrderState,
    Side,
    SubmitOutcome,
    Venue,
    client_order_id,
)
from resources.brokers.ccxt.client import CcxtBroker  # noqa: E402

PER_VENUE = 20
DELAY_S = 0.05
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# The fakes' process: starts the three venues, adds the bench's symbols, prints the ports.
SERVER = f"""
import sys, time
from decimal import Decimal
sys.path.insert(0, {str(PROJECT)!r})
from tests.fakes.fake_alpaca import FakeAlpaca
from tests.fakes.fake_binance import FakeBinance
from tests.fakes.fake_bybit import FakeBybit
alpaca, binance, bybit = FakeAlpaca(), FakeBinance(), FakeBybit()
for i in range({PER_VENUE}):
    s = "EQ" + {LETTERS!r}[i]
    alpaca.prices[s] = Decimal("100")
    alpaca.assets[s] = {{"fractionable": False}}
    c = "TK" + {LETTERS!r}[i]
    binance.markets[c + "USDT"] = dict(binance.markets["ETHUSDT"], base=c)
    binance.prices[c + "USDT"] = Decimal("3000")
    bybit.markets[c + "USDT"] = dict(bybit.markets["BTCUSDT"], base=c)
    bybit.prices[c + "USDT"] = Decimal("60000")
for fake in (alpaca, binance, bybit):
    fake.delay_s = {DELAY_S}
    fake.start()
print(alpaca.url, alpaca.key, alpaca.secret, flush=True)
print(binance.url, binance.key, binance.secret, flush=True)
print(bybit.url, bybit.key, bybit.secret, flush=True)
sys.stdin.read()
"""


def _orders(bar: str) -> list[NetOrder]:
    orders = []
    for i in range(PER_VENUE):
        for symbol, cls, venue, qty, price in (
            (f"EQ{LETTERS[i]}", AssetClass.EQUITY, Venue.ALPACA, "3", "100"),
            (f"TK{LETTERS[i]}/USDT", AssetClass.CRYPTO, Venue.CCXT, "0.01", "3000"),
            (f"TK{LETTERS[i]}/USDT@bybit", AssetClass.CRYPTO, Venue.IBKR, "0.001", "60000"),
        ):
            orders.append(
                NetOrder(
                    symbol=symbol.removesuffix("@bybit"),
                    asset_class=cls,
                    venue=venue,
                    side=Side.BUY,
                    qty=Decimal(qty),
                    reference_price=Decimal(price),
                    client_order_id=client_order_id("bench", bar, symbol, Side.BUY),
                    buy_qty=Decimal(qty),
                    sell_qty=Decimal(0),
                )
            )
    return orders


def _bar(brokers: dict[Venue, Broker], bar: str, max_workers: int) -> tuple[float, int]:
    orders = _orders(bar)
    filled = 0

    def on_update(order: NetOrder, outcome: SubmitOutcome) -> None:
        nonlocal filled
        filled += outcome.state is OrderState.FILLED

    start = time.perf_counter()
    results = execute_orders(
        orders,
        brokers,
        fill_timeout_s=30.0,
        poll_s=0.05,
        lookup_delay_s=0.1,
        on_update=on_update,
        max_workers=max_workers,
    )
    elapsed = time.perf_counter() - start
    bad = [r for r in results if r.outcome.state is not OrderState.FILLED]
    if bad:
        raise SystemExit(f"bench_submit: {len(bad)} orders not filled: {bad[0].outcome}")
    return elapsed, filled


def main() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        (a_url, a_key, a_secret), (b_url, b_key, b_secret), (y_url, y_key, y_secret) = (
            server.stdout.readline().split() for _ in range(3)
        )
        alpaca = AlpacaBroker(
            api_key=a_key,
            secret_key=a_secret,
            base_url=a_url,
            timeout_s=5.0,
            requests_per_minute=1_000_000,
        )
        binance = CcxtBroker(
            exchange="binance",
            api_key=b_key,
            secret=b_secret,
            base_url=b_url,
            timeout_s=5.0,
            enable_rate_limit=False,
        )
        bybit = CcxtBroker(
            exchange="bybit",
            api_key=y_key,
            secret=y_secret,
            base_url=y_url,
            timeout_s=5.0,
            enable_rate_limit=False,
        )
        # Bybit rides on the IBKR routing key: the bench needs three venues, execute_orders
        # only needs a broker per key.
        brokers: dict[Venue, Broker] = {
            Venue.ALPACA: alpaca,
            Venue.CCXT: binance,
            Venue.IBKR: bybit,
        }
        for order in _orders("warm-up"):  # instrument rules, as a running location has them
            broker = brokers[order.venue]
            if isinstance(broker, AlpacaBroker):
                broker.rules(order.symbol)
            else:
                assert isinstance(broker, CcxtBroker)
                broker.rules(order.symbol)
        one_by_one, _ = _bar(brokers, "2024-05-01", max_workers=1)
        concurrent, _ = _bar(brokers, "2024-05-02", max_workers=len(_orders("n")))
        for broker in (alpaca, binance, bybit):
            broker.close()
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)
    print(
        json.dumps(
            {
                "name": "bar_submit_concurrent",
                "value": round(concurrent, 3),
                "unit": "s",
                "baseline": round(one_by_one, 3),
                "ratio": round(one_by_one / concurrent, 2),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
