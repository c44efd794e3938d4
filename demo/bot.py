"""One reference strategy as a real bot of the strategy gateway: ``python -m demo.bot``.

The demo (:mod:`demo.runner`) starts it as a separate process for its last bars. It holds the
strategy's own signal (the same code as the demo's backfill: :mod:`demo.strategies` on the
bundled closes) and knows the allocator only through HTTP (:class:`allocator.client.GatewayClient`,
its token from ``ALLOCATOR_GATEWAY_TOKEN``, never on the command line). The demo drives the
bars on its replayed clock, one JSON line per command on the bot's stdin:

* ``{"bar": DAY}``: read its budget (``GET /v1/me``) and positions (``GET /v1/positions``), size
  the day's target weights to them (:func:`demo.strategies.share_intents`) and ``POST
  /v1/intents``; answer ``{"bar", "submitted": [ids], "accepted": [ids], "refused": [...]}``;
* ``{"fills_since": BAR}``: ``GET /v1/fills?since=BAR``; answer ``{"fills": [...]}``;
* ``{"stop": true}``: leave.

Its first line is ``{"ready": true, "pid": PID}`` once the signal is computed. Exit 0; 2 on a
bad command line; an HTTP failure ends it with the gateway's error on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, TextIO

from allocator.client import GatewayClient, IntentIn
from allocator.execution.records import Bar
from demo.marketdata import load_sp500
from demo.strategies import REFERENCE_STRATEGIES, SignalInputs, held_weights, share_intents

__all__ = ["TOKEN_ENV", "main"]

TOKEN_ENV = "ALLOCATOR_GATEWAY_TOKEN"


def _commands(stream: TextIO) -> Iterator[dict[str, Any]]:
    for line in stream:
        if line.strip():
            command = json.loads(line)
            if not isinstance(command, dict):
                raise ValueError(f"a command is a JSON object, got {line.strip()[:80]!r}")
            yield command


def _answer(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.bot", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the gateway's base URL")
    parser.add_argument("--strategy", required=True, help="a reference strategy's name")
    args = parser.parse_args(argv)
    by_name = {s.name: s for s in REFERENCE_STRATEGIES}
    strategy = by_name.get(args.strategy)
    if strategy is None:
        parser.error(f"--strategy {args.strategy!r}: not one of {', '.join(sorted(by_name))}")
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        parser.error(f"{TOKEN_ENV} is not set: the strategy's gateway token")
    market = load_sp500()
    data = SignalInputs(market.sessions, market.symbols, market.closes, market.index)
    held = held_weights(strategy.weights(data))
    out = sys.stdout
    with GatewayClient(args.url, token) as client:
        _answer(out, {"ready": True, "pid": os.getpid()})
        for command in _commands(sys.stdin):
            if command.get("stop"):
                break
            if "fills_since" in command:
                fills = client.fills(since=str(command["fills_since"]))
                _answer(out, {"fills": [{"bar": f.bar, "symbol": f.symbol} for f in fills]})
                continue
            day = str(command["bar"])
            t = market.position(day)
            me = client.me()
            positions = client.positions()
            prices = [market.price_text(t, m) for m in range(len(market.symbols))]
            intents = share_intents(
                strategy=strategy.name,
                bar=Bar(day),
                weights=held[t],
                prices=prices,
                symbols=market.symbols,
                capital=Decimal(me.capital),
                positions=positions.positions,
                band=strategy.band,
            )
            answers = client.submit_intents(
                [IntentIn(i.intent_id, i.symbol, i.asset_class.value, i.qty, day) for i in intents]
            )
            _answer(
                out,
                {
                    "bar": day,
                    "submitted": [i.intent_id for i in intents],
                    "accepted": [a.intent_id for a in answers if a.accepted],
                    "refused": [
                        [a.intent_id, a.reason, a.detail] for a in answers if not a.accepted
                    ],
                },
            )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
