"""Run the seed bar against a ledger in a separate process; optionally die at a checkpoint.

Usage: python bar_script.py URL [CHECKPOINT_PREFIX]. Exits 0 after recording the bar, or is
killed (os._exit(9), no cleanup, like a SIGKILL) when a checkpoint starts with the prefix.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal

from allocator.config import RoutingConfig
from allocator.execution import DEFAULT_INSTRUMENTS, Intent, parse_bar, run_bar
from allocator.execution.orders import AssetClass, Venue
from resources.brokers.paper.client import PaperBroker
from resources.ledger import Ledger, LedgerPaperState


def main(url: str, crash_at: str) -> int:
    ledger = Ledger(url)
    bar = parse_bar("2024-05-01")
    ledger.register_strategies(["A", "B"])
    ledger.submit_intents(
        [
            Intent(
                intent_id="a1",
                strategy="A",
                symbol="SPY",
                asset_class=AssetClass.ETF,
                qty=Decimal(100),
                bar=bar,
            ),
            Intent(
                intent_id="b1",
                strategy="B",
                symbol="SPY",
                asset_class=AssetClass.ETF,
                qty=Decimal(-60),
                bar=bar,
            ),
        ]
    )
    state = LedgerPaperState(ledger)
    brokers = {v: PaperBroker(venue=v, instruments=DEFAULT_INSTRUMENTS, state=state) for v in Venue}

    def checkpoint(name: str) -> None:
        if crash_at and name.startswith(crash_at):
            os._exit(9)

    run_bar(
        ledger=ledger,
        brokers=brokers,
        bar=bar,
        prices={"SPY": Decimal("500.25")},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=Decimal(100_000),
        account="paper",
        cash_quantum=Decimal("0.00000001"),
        checkpoint=checkpoint,
        lookup_delay_s=0.0,
    )
    ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
