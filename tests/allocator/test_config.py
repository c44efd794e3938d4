"""Configuration: SPEC defaults, TOML loading, errors that name the key."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path

import pytest

from allocator.config import AllocationConfig, AllocatorConfig
from allocator.errors import ConfigError


def test_defaults_are_the_spec_values() -> None:
    c = AllocatorConfig()
    assert (c.sizing.method, c.sizing.vol_window, c.sizing.annualization) == (
        "inverse_vol",
        60,
        252,
    )
    assert c.sizing.rebalance_every == 60
    assert (c.correlation.window, c.correlation.threshold, c.correlation.persistence) == (
        90,
        0.70,
        30,
    )
    assert (c.breaker.sharpe_window, c.breaker.half_at, c.breaker.halt_at) == (90, -0.15, -0.25)
    assert c.breaker.recovery_sharpe == 0.5
    assert c.allocation.total_capital == 100_000
    assert c.allocation.redistribute_freed_capital is False
    assert c.calendar.name == "XNYS"
    assert c.routing.multi_broker_threshold == 25_000
    assert dict(c.routing.proxy_map) == {"ES": "SPY", "NQ": "QQQ"}


def test_config_is_frozen() -> None:
    c = AllocatorConfig()
    with pytest.raises(AttributeError):
        c.sizing.vol_window = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.routing.proxy_map["ES"] = "IVV"  # type: ignore[index]


def test_loads_every_spec_key_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        """
[sizing]
method = "erc"
vol_window = 40
annualization = 260
rebalance_every = 20
[correlation]
window = 50
threshold = 0.8
persistence = 10
[breaker]
sharpe_window = 30
half_at = -0.1
halt_at = -0.2
recovery_sharpe = 1
[allocation]
total_capital = 98000
redistribute_freed_capital = true
[calendar]
name = "XLON"
"""
    )
    c = AllocatorConfig.from_toml(path)
    assert c.sizing.method == "erc"
    assert c.sizing.vol_window == 40
    assert c.correlation.threshold == 0.8
    assert c.correlation.persistence == 10
    assert c.breaker.recovery_sharpe == 1.0
    assert isinstance(c.breaker.recovery_sharpe, float)
    assert c.allocation.total_capital == 98_000
    assert c.allocation.redistribute_freed_capital
    assert c.calendar.name == "XLON"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"sizing": {"vol_window": -60}}, "sizing.vol_window"),
        ({"sizing": {"rebalance_every": 0}}, "sizing.rebalance_every"),
        ({"sizing": {"method": "hrp"}}, "sizing.method"),
        ({"correlation": {"window": -1}}, "correlation.window"),
        ({"correlation": {"threshold": 1.0}}, "correlation.threshold"),
        ({"correlation": {"threshold": -1.2}}, "correlation.threshold"),
        ({"correlation": {"persistence": 0}}, "correlation.persistence"),
        ({"breaker": {"half_at": 0.1}}, "breaker.half_at"),
        ({"breaker": {"halt_at": -0.1}}, "breaker.halt_at"),
        ({"breaker": {"half_multiplier": 1.5}}, "breaker.half_multiplier"),
        ({"allocation": {"total_capital": -1}}, "allocation.total_capital"),
        (
            {"allocation": {"redistribute_freed_capital": "yes"}},
            "allocation.redistribute_freed_capital",
        ),
        ({"sizing": {"vol_window": 60.5}}, "sizing.vol_window"),
        ({"sizing": {"volwindow": 60}}, "sizing.volwindow"),
        ({"sizeing": {}}, "sizeing"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, dict[str, object]], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}: ") as info:
        AllocatorConfig.from_mapping(raw)
    assert info.value.key == key


def test_toml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[sizing\nvol_window = 3")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        AllocatorConfig.from_toml(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[correlation]\nthreshhold = 0.5\n")
    with pytest.raises(ConfigError, match=r"correlation\.threshhold: unknown key .*unknown\.toml"):
        AllocatorConfig.from_toml(unknown)


def test_money_is_decimal_through_the_text_never_the_float(tmp_path: Path) -> None:
    path = tmp_path / "money.toml"
    path.write_text(
        """
[allocation]
total_capital = 98000.10
[routing]
multi_broker_threshold = 25000
[execution]
cash_quantum = 0.01
max_leverage = 1.1
"""
    )
    c = AllocatorConfig.from_toml(path)
    # Decimal(98000.10) would be 98000.100000000005820766091346740722656250.
    assert c.allocation.total_capital == Decimal("98000.10")
    assert str(c.allocation.total_capital) == "98000.1"
    assert c.routing.multi_broker_threshold == Decimal(25_000)
    assert c.execution.cash_quantum == Decimal("0.01")
    assert c.execution.max_leverage == Decimal("1.1")
    for value in (
        c.allocation.total_capital,
        c.routing.multi_broker_threshold,
        c.execution.cash_quantum,
        c.execution.max_leverage,
    ):
        assert isinstance(value, Decimal)
    # A decimal string is exact too (the form cash_quantum was written in before).
    text = AllocatorConfig.from_mapping({"execution": {"cash_quantum": "0.00000001"}})
    assert text.execution.cash_quantum == Decimal("0.00000001")
    assert AllocatorConfig().execution.cash_quantum == Decimal("0.00000001")


def test_sections_built_in_code_convert_numbers_to_decimal() -> None:
    assert AllocationConfig(total_capital=50_000).total_capital == Decimal(50_000)
    assert isinstance(AllocationConfig(total_capital=0.5).total_capital, Decimal)
    assert AllocationConfig(total_capital=0.1).total_capital == Decimal("0.1")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # the inbox computed now - 1,000,000 days and raised OverflowError
        ({"execution": {"bar_tolerance": 1_000_000}}, "must be <= 1000 bars, got 1000000"),
        ({"execution": {"bar_tolerance": -1}}, "must be >= 0, got -1"),
        ({"execution": {"bar_interval_seconds": 0}}, "must be a whole number >= 1, got 0"),
        ({"execution": {"bar_interval_seconds": 604_801}}, "must be <= 604800, got 604801"),
        ({"execution": {"max_leverage": -0.5}}, "must be >= 0, got -0.5"),
        ({"execution": {"max_leverage": 101}}, "must be <= 100, got 101"),
        ({"execution": {"max_leverage": True}}, "must be a number, got True"),
        ({"execution": {"cash_quantum": 0}}, "must be > 0, got 0"),
        ({"execution": {"cash_quantum": 2}}, r"must lie in \[1e-12, 1\], got 2"),
        ({"execution": {"cash_quantum": "1e-13"}}, r"must lie in \[1e-12, 1\], got 1E-13"),
        ({"execution": {"cash_quantum": "a cent"}}, "must be a decimal number, got 'a cent'"),
        ({"execution": {"ledger_url": "data/ledger.sqlite"}}, "must be a SQLAlchemy URL"),
        ({"allocation": {"total_capital": -1}}, "must be >= 0, got -1"),
        ({"allocation": {"total_capital": 1e13}}, "must be <= 1000000000000, got 1000"),
        ({"allocation": {"total_capital": math.inf}}, "must be a finite number, got inf"),
        ({"routing": {"multi_broker_threshold": -1}}, "must be >= 0, got -1"),
        ({"routing": {"multi_broker_threshold": 1e13}}, "must be <= 1000000000000"),
        ({"sizing": {"vol_window": 1}}, "must be >= 2 sessions, got 1"),
        ({"sizing": {"vol_window": 10_001}}, "must be <= 10000 sessions, got 10001"),
        ({"sizing": {"annualization": 0}}, "must be a whole number >= 1, got 0"),
        ({"sizing": {"annualization": 367}}, "must be <= 366, got 367"),
        ({"sizing": {"rebalance_every": 10_001}}, "must be <= 10000, got 10001"),
        ({"correlation": {"window": 10_001}}, "must be <= 10000 sessions, got 10001"),
        ({"correlation": {"persistence": 10_001}}, "must be <= 10000, got 10001"),
        ({"breaker": {"sharpe_window": 1}}, "must be >= 2 sessions, got 1"),
        ({"breaker": {"sharpe_window": 10_001}}, "must be <= 10000 sessions, got 10001"),
        ({"breaker": {"recovery_sharpe": 11}}, r"must lie in \[-10, 10\], got 11.0"),
        ({"breaker": {"recovery_sharpe": math.nan}}, "must be a finite number, got nan"),
        ({"breaker": {"half_multiplier": -0.1}}, r"must lie in \[0, 1\], got -0.1"),
    ],
)
def test_every_number_has_a_range_and_the_error_names_the_key(
    raw: dict[str, dict[str, object]], message: str
) -> None:
    ((section, values),) = raw.items()
    ((name, _),) = values.items()
    key = f"{section}.{name}"
    with pytest.raises(ConfigError, match=f"^{re.escape(key)}: {message}") as info:
        AllocatorConfig.from_mapping(raw)
    assert info.value.key == key


def test_the_bar_tolerance_from_a_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[execution]\nbar_tolerance = 1000000\n")
    with pytest.raises(ConfigError, match=r"^execution\.bar_tolerance: must be <= 1000 bars"):
        AllocatorConfig.from_toml(path)


def test_the_crypto_exchange_map_is_gone_and_unknown() -> None:
    with pytest.raises(ConfigError, match=r"^routing\.crypto_exchange_map: unknown key"):
        AllocatorConfig.from_mapping({"routing": {"crypto_exchange_map": {"BTC/USDT": "bybit"}}})
    kept = AllocatorConfig.from_mapping({"routing": {"crypto_exchange": "bybit"}})
    assert kept.routing.crypto_exchange == "bybit"
