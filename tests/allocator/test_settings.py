"""The one settings source: file < environment < flags, one validated record, loud errors."""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from pathlib import Path

import pytest

from allocator.errors import ConfigError
from allocator.settings import ENVIRONMENT, INSTALL_ROOT, Settings, load_settings


def test_defaults_without_file_or_environment() -> None:
    s = load_settings(env={})
    assert s == Settings()
    # The URL the ledger used by default before the settings record decided it.
    project = Path(__file__).resolve().parents[2]
    assert s.ledger_url == f"sqlite:///{project / 'data' / 'ledger.sqlite'}"
    assert s.config.execution.ledger_url == s.ledger_url
    assert s.data_dir == str(INSTALL_ROOT / "data" / "dagster")
    assert s.dashboard == str(INSTALL_ROOT / "out" / "dashboard.html")
    assert (s.instruments, s.prices, s.returns_source, s.config_path) == ("", "", "", "")
    assert (s.bar_deadline_s, s.max_abs_return) == (60.0, 0.5)
    assert (s.sensor_interval_s, s.sensor_hold_s, s.sensor_poll_s) == (1, 4.8, 0.2)
    assert (s.sensors_running, s.bar_job) == (False, "bar_job")
    assert s.config.allocation.total_capital == Decimal(100_000)


def test_the_record_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().ledger_url = "sqlite:///elsewhere"  # type: ignore[misc]


def test_precedence_file_then_environment_then_flag(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[execution]\nledger_url = "sqlite:///from-file.sqlite"\n')
    env = {"ALLOCATOR_CONFIG": str(config)}
    assert load_settings(env=env).ledger_url == "sqlite:///from-file.sqlite"
    env["ALLOCATOR_LEDGER_URL"] = "sqlite:///from-env.sqlite"
    assert load_settings(env=env).ledger_url == "sqlite:///from-env.sqlite"
    flagged = load_settings(env=env, ledger_url="sqlite:///from-flag.sqlite")
    assert flagged.ledger_url == "sqlite:///from-flag.sqlite"
    # The configuration inside the record carries the same, resolved URL.
    assert flagged.config.execution.ledger_url == "sqlite:///from-flag.sqlite"


def test_environment_then_flag_for_the_other_locations(tmp_path: Path) -> None:
    env = {
        "ALLOCATOR_INSTRUMENTS": "env-instruments.csv",
        "ALLOCATOR_PRICES": "env-prices",
        "ALLOCATOR_DATA_DIR": "env-data",
        "ALLOCATOR_DASHBOARD": "env.html",
        "ALLOCATOR_RETURNS_SOURCE": "env-returns.csv",
        "ALLOCATOR_BAR_DEADLINE_S": "30",
        "ALLOCATOR_MAX_ABS_RETURN": "0.25",
        "ALLOCATOR_BAR_SENSOR_INTERVAL": "5",
        "ALLOCATOR_BAR_SENSOR_HOLD": "0",
        "ALLOCATOR_BAR_SENSOR_POLL": "0.05",
        "ALLOCATOR_SENSORS_RUNNING": "1",
        "ALLOCATOR_BAR_JOB": "bar_job_multiprocess",
    }
    s = load_settings(env=env)
    assert (s.instruments, s.prices, s.data_dir) == (
        "env-instruments.csv",
        "env-prices",
        "env-data",
    )
    assert (s.dashboard, s.returns_source) == ("env.html", "env-returns.csv")
    assert (s.bar_deadline_s, s.max_abs_return) == (30.0, 0.25)
    assert (s.sensor_interval_s, s.sensor_hold_s, s.sensor_poll_s) == (5, 0.0, 0.05)
    assert isinstance(s.sensor_interval_s, int)
    assert (s.sensors_running, s.bar_job) == (True, "bar_job_multiprocess")
    f = load_settings(
        env=env,
        instruments=tmp_path / "flag.csv",
        bar_deadline_s=0,
        sensors_running=False,
        bar_job="bar_job",
    )
    assert f.instruments == str(tmp_path / "flag.csv")
    assert (f.bar_deadline_s, f.sensors_running, f.bar_job) == (0, False, "bar_job")
    assert f.prices == "env-prices"  # what no flag names stays the environment's


def test_config_file_from_the_flag_over_the_environment(tmp_path: Path) -> None:
    by_env = tmp_path / "env.toml"
    by_env.write_text("[allocation]\ntotal_capital = 50000\n")
    by_flag = tmp_path / "flag.toml"
    by_flag.write_text("[allocation]\ntotal_capital = 75000.25\n")
    env = {"ALLOCATOR_CONFIG": str(by_env)}
    assert load_settings(env=env).config.allocation.total_capital == Decimal(50_000)
    s = load_settings(env=env, config=by_flag)
    assert s.config_path == str(by_flag)
    assert s.config.allocation.total_capital == Decimal("75000.25")


def test_an_empty_variable_counts_as_unset() -> None:
    env = dict.fromkeys(ENVIRONMENT.values(), "")
    assert load_settings(env=env) == Settings()


def test_a_bad_file_value_names_its_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[execution]\nbar_tolerance = 1000000\n")
    with pytest.raises(ConfigError, match=r"^execution\.bar_tolerance: .*bad\.toml"):
        load_settings(env={"ALLOCATOR_CONFIG": str(bad)})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ALLOCATOR_BAR_DEADLINE_S", "soon", "must be a number, got 'soon'"),
        ("ALLOCATOR_BAR_DEADLINE_S", "-1", r"must lie in \[0, 86400\] seconds, got -1.0"),
        ("ALLOCATOR_BAR_DEADLINE_S", "86401", r"must lie in \[0, 86400\] seconds"),
        ("ALLOCATOR_BAR_DEADLINE_S", "nan", r"must lie in \[0, 86400\] seconds, got nan"),
        ("ALLOCATOR_MAX_ABS_RETURN", "half", "must be a number, got 'half'"),
        ("ALLOCATOR_MAX_ABS_RETURN", "0", r"must lie in \(0, 10\], got 0.0"),
        ("ALLOCATOR_MAX_ABS_RETURN", "11", r"must lie in \(0, 10\], got 11.0"),
        ("ALLOCATOR_BAR_SENSOR_INTERVAL", "x", "must be a number, got 'x'"),
        ("ALLOCATOR_BAR_SENSOR_INTERVAL", "0", r"must lie in \[1, 3600\] seconds, got 0.0"),
        ("ALLOCATOR_BAR_SENSOR_INTERVAL", "3601", r"must lie in \[1, 3600\] seconds"),
        ("ALLOCATOR_BAR_SENSOR_INTERVAL", "1.5", "must be a whole number of seconds, got 1.5"),
        ("ALLOCATOR_BAR_SENSOR_HOLD", "long", "must be a number, got 'long'"),
        ("ALLOCATOR_BAR_SENSOR_HOLD", "-0.1", r"must lie in \[0, 50\] seconds"),
        ("ALLOCATOR_BAR_SENSOR_HOLD", "60", r"must lie in \[0, 50\] seconds, got 60.0"),
        ("ALLOCATOR_BAR_SENSOR_POLL", "fast", "must be a number, got 'fast'"),
        ("ALLOCATOR_BAR_SENSOR_POLL", "0", r"must lie in \[0.01, 10\] seconds, got 0.0"),
        ("ALLOCATOR_BAR_SENSOR_POLL", "inf", r"must lie in \[0.01, 10\] seconds, got inf"),
        ("ALLOCATOR_SENSORS_RUNNING", "yes", "must be 0 or 1, got 'yes'"),
        ("ALLOCATOR_BAR_JOB", "other_job", "must be one of"),
        ("ALLOCATOR_LEDGER_URL", "data/ledger.sqlite", "must be a SQLAlchemy URL"),
        ("ALLOCATOR_CONFIG", "/nonexistent/allocator.toml", "cannot read the config file"),
    ],
)
def test_every_environment_check_fails_loudly_naming_the_variable(
    variable: str, value: str, message: str
) -> None:
    key = "/nonexistent/allocator.toml" if variable == "ALLOCATOR_CONFIG" else variable
    with pytest.raises(ConfigError, match=f"^{re.escape(key)}: {message}") as info:
        load_settings(env={variable: value})
    assert info.value.key == key


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bar_deadline_s", -1.0, r"must lie in \[0, 86400\] seconds"),
        ("max_abs_return", 0.0, r"must lie in \(0, 10\]"),
        ("sensor_interval_s", 0, r"must lie in \[1, 3600\] seconds"),
        ("sensor_hold_s", 51.0, r"must lie in \[0, 50\] seconds"),
        ("sensor_poll_s", 0.0, r"must lie in \[0.01, 10\] seconds"),
        ("bar_job", "other_job", "must be one of"),
        ("ledger_url", "ledger.sqlite", "must be a SQLAlchemy URL"),
        ("data_dir", "", "must not be empty"),
        ("dashboard", "", "must not be empty"),
    ],
)
def test_flags_and_direct_construction_are_checked_too(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: {message}"):
        load_settings(env={}, **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"^{field}: {message}"):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_every_field_but_the_configuration_has_its_variable() -> None:
    names = {f.name for f in dataclasses.fields(Settings)} - {"config"}
    assert set(ENVIRONMENT) == names
    assert all(v.startswith("ALLOCATOR_") for v in ENVIRONMENT.values())
