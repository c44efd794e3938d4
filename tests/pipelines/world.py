"""A small world for the pipeline: one year of the sample returns, a SQLite ledger, bar prices
and a few intents, all in a temporary folder, wired through the code location's resources."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from allocator.execution.orders import AssetClass
from allocator.execution.prices import write_prices
from allocator.execution.records import Intent, parse_bar

SAMPLE = Path(__file__).resolve().parents[2] / "demo" / "data" / "sample_returns.csv"
LAST_DAY = "2019-12-31"
BARS = ("2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07")
PRICES = {"SPY": "320", "QQQ": "210", "TLT": "135"}


@dataclass
class World:
    root: Path
    env: dict[str, str]

    def resources(self, **overrides: object) -> dict[str, object]:
        from resources.dagster_resources import AllocatorSettings, default_resources

        res = default_resources(self.env)
        if overrides:
            res["settings"] = AllocatorSettings(**overrides)  # type: ignore[arg-type]
        return res

    def ledger(self):  # type: ignore[no-untyped-def]
        from resources.ledger import Ledger

        return Ledger(self.env["ALLOCATOR_LEDGER_URL"])


def write_world(root: Path) -> World:
    root.mkdir(parents=True, exist_ok=True)
    returns = root / "returns.csv"
    with SAMPLE.open(encoding="utf-8") as src, returns.open("w", encoding="utf-8") as dst:
        for number, line in enumerate(src):
            if number == 0 or line[:10] <= LAST_DAY:
                dst.write(line)
    prices = root / "prices.csv"
    write_prices(prices, {symbol: Decimal(text) for symbol, text in PRICES.items()})
    env = {
        "ALLOCATOR_LEDGER_URL": f"sqlite:///{root / 'ledger.sqlite'}",
        "ALLOCATOR_DATA_DIR": str(root / "assets"),
        "ALLOCATOR_RETURNS_SOURCE": str(returns),
        "ALLOCATOR_PRICES": str(prices),
    }
    return World(root=root, env=env)


def bar_intents(bar: str) -> list[Intent]:
    """pairs buys SPY, trend sells SPY (they cross), flow buys QQQ, news and carry
    buy TLT: every strategy of the 2019 sample submits, so the bar is complete."""
    b = parse_bar(bar)
    rows = [
        ("pairs", "SPY", "10"),
        ("trend", "SPY", "-4"),
        ("flow", "QQQ", "3"),
        ("news", "TLT", "2"),
        ("carry", "TLT", "1"),
    ]
    return [
        Intent(
            intent_id=f"{bar}-{s}-{m}",
            strategy=s,
            symbol=m,
            asset_class=AssetClass.ETF,
            qty=Decimal(q),
            bar=b,
        )
        for s, m, q in rows
    ]


def submit_bar(world: World, bar: str) -> None:
    ledger = world.ledger()
    try:
        report = ledger.submit_intents(bar_intents(bar), source="test")
        assert not report.refused, report.refused
    finally:
        ledger.close()
