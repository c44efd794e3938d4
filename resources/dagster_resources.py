"""Dagster resources: the allocator's configuration, the ledger, the paper brokers, the bar
prices and a small Parquet IO manager. They wrap the core; they decide nothing themselves.

Every location and timing comes from one :class:`allocator.settings.Settings` record, resolved
by :func:`allocator.settings.load_settings` when the definitions load (the TOML file, then the
``ALLOCATOR_*`` environment: ``ALLOCATOR_CONFIG``, ``ALLOCATOR_LEDGER_URL``,
``ALLOCATOR_DATA_DIR``, ``ALLOCATOR_RETURNS_SOURCE``, ``ALLOCATOR_PRICES``,
``ALLOCATOR_INSTRUMENTS``, ``ALLOCATOR_DASHBOARD``, ``ALLOCATOR_BAR_DEADLINE_S``,
``ALLOCATOR_MAX_ABS_RETURN``, ``ALLOCATOR_BAR_SENSOR_HOLD``, ``ALLOCATOR_BAR_SENSOR_POLL``).
:func:`default_resources` turns that record into resources, and the resources' own defaults
are the record's defaults. Why: the command line resolves its settings with the same function,
so ``allocator intents submit`` writes into the very ledger this code location trades from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from allocator.config import AllocatorConfig
from allocator.execution.instruments import DEFAULT_INSTRUMENTS, InstrumentTable, load_instruments
from allocator.execution.prices import bar_price_times, bar_prices
from allocator.settings import Settings, default_ledger_url, load_settings
from resources.alerts import AlertWebhook
from resources.brokers.paper.resource import PaperBrokerResource

__all__ = [
    "AllocatorSettings",
    "LedgerResource",
    "ParquetIOManager",
    "PricesResource",
    "default_resources",
]

_DEFAULTS = Settings()


class AllocatorSettings(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The allocator's TOML configuration plus the pipeline's data-quality bounds and timings
    (built from the :class:`~allocator.settings.Settings` record by :func:`default_resources`)."""

    config_path: str = ""
    instruments_path: str = ""
    max_abs_daily_return: float = _DEFAULTS.max_abs_return
    missing_returns: str = "allow"  # "allow": missing is NaN (SPEC §1); "refuse": a failure
    non_session_dates: str = "roll_forward"  # "roll_forward" (SPEC §1) or "refuse"
    max_order_notional: float = 1_000_000.0
    bar_deadline_seconds: float = _DEFAULTS.bar_deadline_s
    bar_check_engine: str = "native"  # "gx" or "native" for the checks on the per-bar path
    dashboard_path: str = _DEFAULTS.dashboard
    sensor_hold_s: float = _DEFAULTS.sensor_hold_s  # one bar-sensor evaluation watches this long
    sensor_poll_s: float = _DEFAULTS.sensor_poll_s  # and re-reads the inbox this often
    # a complete bar is left this long to a live gateway's launcher (pipelines/sensors.py)
    sensor_gateway_grace_s: float = _DEFAULTS.sensor_gateway_grace_s

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
        """``url``, else the settings' default ledger (:func:`default_ledger_url`)."""
        return self.url or default_ledger_url()


class PricesResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Reference prices of the bar: ``<prices_path>`` or ``<dir>/<bar>.csv`` when a folder.

    Read by :func:`allocator.execution.prices.bar_prices`: no path or no file for the bar
    means no prices (the bar's entries are refused ``no_price``); a symbol missing from the
    file has no price; a malformed row fails the read with an ``InputError`` naming the file
    and the row, so the bar run fails loudly instead of trading without that price."""

    prices_path: str = ""

    def prices(self, bar_key: str) -> dict[str, Decimal]:
        """The reference prices of bar ``bar_key`` (quote currency per base unit, > 0)."""
        return bar_prices(self.prices_path, bar_key)

    def price_times(self, bar_key: str) -> dict[str, datetime]:
        """When each price of bar ``bar_key`` was taken (the file's ``as_of``; UTC)."""
        return bar_price_times(self.prices_path, bar_key)


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


def default_resources(
    env: Mapping[str, str] | None = None, *, settings: Settings | None = None
) -> dict[str, Any]:
    """The resources of the code location, from ``settings`` (default: the record
    :func:`~allocator.settings.load_settings` resolves from ``env``, default ``os.environ``)."""
    s = settings if settings is not None else load_settings(env=env)
    return {
        "settings": AllocatorSettings(
            config_path=s.config_path,
            instruments_path=s.instruments,
            bar_deadline_seconds=s.bar_deadline_s,
            max_abs_daily_return=s.max_abs_return,
            dashboard_path=s.dashboard,
            sensor_hold_s=s.sensor_hold_s,
            sensor_poll_s=s.sensor_poll_s,
            sensor_gateway_grace_s=s.sensor_gateway_grace_s,
        ),
        "ledger": LedgerResource(url=s.ledger_url, returns_source=s.returns_source),
        "paper": PaperBrokerResource(),
        "market": PricesResource(prices_path=s.prices),
        "alerts": AlertWebhook(url=s.alert_webhook),
        "io_manager": parquet_io_manager.configured({"base_dir": s.data_dir}),
    }
