"""Dagster resources: the allocator's configuration, the ledger, the paper brokers, the bar
prices and a small Parquet IO manager. They wrap the core; they decide nothing themselves.

Locations come from the environment at definitions load (plain paths and URLs, no secrets):
``ALLOCATOR_CONFIG`` (TOML), ``ALLOCATOR_LEDGER_URL``, ``ALLOCATOR_DATA_DIR`` (Parquet assets),
``ALLOCATOR_RETURNS_SOURCE`` (a returns file ingested into the ledger on each rebalance),
``ALLOCATOR_PRICES`` (CSV ``symbol,price``: the bar's reference prices, or a folder of
``<bar>.csv``), ``ALLOCATOR_BAR_DEADLINE_S`` (the bar sensor's deadline, default 60),
``ALLOCATOR_MAX_ABS_RETURN`` (the returns check's bound, default 0.5) and ``ALLOCATOR_INSTRUMENTS``
(a symbol table CSV; default: the bundled one).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from allocator.config import AllocatorConfig
from allocator.execution.instruments import DEFAULT_INSTRUMENTS, InstrumentTable, load_instruments
from resources.brokers.paper.resource import PaperBrokerResource

__all__ = [
    "AllocatorSettings",
    "LedgerResource",
    "ParquetIOManager",
    "PricesResource",
    "default_resources",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class AllocatorSettings(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The allocator's TOML configuration plus the pipeline's data-quality bounds."""

    config_path: str = ""
    instruments_path: str = ""
    max_abs_daily_return: float = 0.5
    missing_returns: str = "allow"  # "allow": missing is NaN (SPEC §1); "refuse": a failure
    non_session_dates: str = "roll_forward"  # "roll_forward" (SPEC §1) or "refuse"
    max_order_notional: float = 1_000_000.0
    bar_deadline_seconds: float = 60.0
    bar_check_engine: str = "native"  # "gx" or "native" for the checks on the per-bar path

    def config(self) -> AllocatorConfig:
        if self.config_path:
            return AllocatorConfig.from_toml(self.config_path)
        return AllocatorConfig()

    def instruments(self) -> InstrumentTable:
        if self.instruments_path:
            return load_instruments(self.instruments_path)
        return DEFAULT_INSTRUMENTS


class LedgerResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The ledger (``resources.ledger.Ledger``); one connection pool per step, closed after."""

    url: str = ""
    returns_source: str = ""

    @contextmanager
    def open(self) -> Iterator[Any]:
        from resources.ledger import Ledger

        ledger = Ledger(self.resolved_url())
        try:
            yield ledger
        finally:
            ledger.close()

    def resolved_url(self) -> str:
        from resources.ledger import default_url

        return self.url or default_url()


class PricesResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Reference prices of the bar: ``<prices_path>`` or ``<dir>/<bar>.csv`` when a folder.

    A symbol without a price is simply absent (its entries are refused ``no_price``)."""

    prices_path: str = ""

    def prices(self, bar_key: str) -> dict[str, Decimal]:
        if not self.prices_path:
            return {}
        path = Path(self.prices_path)
        if path.is_dir():
            path = path / f"{bar_key.replace(':', '')}.csv"
        if not path.exists():
            return {}
        out: dict[str, Decimal] = {}
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                price = Decimal(row["price"].strip())
                if price.is_finite() and price > 0:
                    out[row["symbol"].strip()] = price
        return out


class ParquetIOManager(dg.UPathIOManager):
    """Every asset's value as ``<base>/<asset key path>.parquet`` (inspectable, no pickles)."""

    extension: str = ".parquet"

    def __init__(self, base_dir: str) -> None:
        super().__init__(base_path=UPath(base_dir))

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".parquet.tmp")
        obj.to_parquet(str(tmp), index=False)
        os.replace(str(tmp), str(path))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        return pd.read_parquet(str(path))


@dg.io_manager(config_schema={"base_dir": dg.StringSource})
def parquet_io_manager(init_context: dg.InitResourceContext) -> ParquetIOManager:
    return ParquetIOManager(init_context.resource_config["base_dir"])


def default_resources(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The resources of the code location, located from the environment (see module doc)."""
    e = os.environ if env is None else env
    data_dir = e.get("ALLOCATOR_DATA_DIR") or str(PROJECT_ROOT / "data" / "dagster")
    return {
        "settings": AllocatorSettings(
            config_path=e.get("ALLOCATOR_CONFIG", ""),
            instruments_path=e.get("ALLOCATOR_INSTRUMENTS", ""),
            bar_deadline_seconds=float(e.get("ALLOCATOR_BAR_DEADLINE_S", "60")),
            max_abs_daily_return=float(e.get("ALLOCATOR_MAX_ABS_RETURN", "0.5")),
        ),
        "ledger": LedgerResource(
            url=e.get("ALLOCATOR_LEDGER_URL", ""),
            returns_source=e.get("ALLOCATOR_RETURNS_SOURCE", ""),
        ),
        "paper": PaperBrokerResource(),
        "market": PricesResource(prices_path=e.get("ALLOCATOR_PRICES", "")),
        "io_manager": parquet_io_manager.configured({"base_dir": data_dir}),
    }
