"""Configuration: SPEC defaults, TOML loading, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from allocator.config import AllocatorConfig
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
