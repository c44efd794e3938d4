"""One source of settings: the record every command and the code location run with.

:func:`load_settings` resolves, in this order (a later source wins):

1. the configuration file, TOML (:class:`~allocator.config.AllocatorConfig`, SPEC §11 keys plus
   ``[execution]`` and ``[routing]``), named by ``config=`` (the ``--config`` flag) or else by
   ``ALLOCATOR_CONFIG``;
2. the ``ALLOCATOR_*`` environment (:data:`ENVIRONMENT` lists every variable);
3. explicit flags (the keyword arguments of :func:`load_settings`; ``None`` means "not given").

It returns one frozen, validated :class:`Settings`: the configuration plus the locations and
the pipeline's timings. Every number has a range; a value outside it, or an environment value
that is not a number, is a :class:`~allocator.errors.ConfigError` that names the key, the
variable or the flag. The ledger URL is decided here, once: ``[execution] ledger_url``, then
``ALLOCATOR_LEDGER_URL``, then ``--ledger``, else :func:`default_ledger_url`; the ledger only
opens the URL it is given, and ``settings.config.execution.ledger_url`` holds the same URL.

Why one function: the code location, ``allocator intents submit``, ``allocator returns submit``
and ``allocator broker`` used to read their settings each on its own, and disagreed (a bot's
intents could land in another ledger than the one the pipeline trades from). Now they all call
this, so two processes started with the same file and environment see the same ledger, the
same instruments and the same rules. It lives in the pure core (no Dagster import) so that the
command line and the tests can use it without loading the pipeline.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from allocator.config import AllocatorConfig
from allocator.errors import ConfigError

__all__ = [
    "ENVIRONMENT",
    "INSTALL_ROOT",
    "BarJob",
    "Settings",
    "default_ledger_url",
    "load_settings",
]

INSTALL_ROOT = Path(__file__).resolve().parents[1]
"""The project's root: the default ledger, asset data and dashboard live under it."""

BarJob = Literal["bar_job", "bar_job_multiprocess"]
_BAR_JOBS: tuple[BarJob, ...] = ("bar_job", "bar_job_multiprocess")

ENVIRONMENT: Mapping[str, str] = {
    "config_path": "ALLOCATOR_CONFIG",
    "ledger_url": "ALLOCATOR_LEDGER_URL",
    "instruments": "ALLOCATOR_INSTRUMENTS",
    "prices": "ALLOCATOR_PRICES",
    "data_dir": "ALLOCATOR_DATA_DIR",
    "dashboard": "ALLOCATOR_DASHBOARD",
    "returns_source": "ALLOCATOR_RETURNS_SOURCE",
    "bar_deadline_s": "ALLOCATOR_BAR_DEADLINE_S",
    "max_abs_return": "ALLOCATOR_MAX_ABS_RETURN",
    "sensor_interval_s": "ALLOCATOR_BAR_SENSOR_INTERVAL",
    "sensor_hold_s": "ALLOCATOR_BAR_SENSOR_HOLD",
    "sensor_poll_s": "ALLOCATOR_BAR_SENSOR_POLL",
    "sensor_gateway_grace_s": "ALLOCATOR_BAR_SENSOR_GATEWAY_GRACE",
    "sensors_running": "ALLOCATOR_SENSORS_RUNNING",
    "bar_job": "ALLOCATOR_BAR_JOB",
    "alert_webhook": "ALLOCATOR_ALERT_WEBHOOK",
}
"""The environment variable of each :class:`Settings` field."""


@dataclass(frozen=True, slots=True)
class _Range:
    """A numeric setting's range: ``lo <= v <= hi`` (``lo < v`` when ``lo_open``)."""

    lo: float
    hi: float
    whole: bool = False
    lo_open: bool = False
    unit: str = "seconds"

    def text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]{unit}"

    def check(self, key: str, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"must be a number, got {value!r}")
        inside = (value > self.lo if self.lo_open else value >= self.lo) and value <= self.hi
        if not math.isfinite(value) or not inside:
            raise ConfigError(key, f"must lie in {self.text()}, got {value!r}")
        if self.whole and value != int(value):
            raise ConfigError(key, f"must be a whole number of {self.unit}, got {value!r}")


# Why these bounds: a deadline longer than a day would leave a daily bar waiting for the next
# one; a daily return bound above 10 (1,000%) checks nothing; a sensor evaluation must end well
# within Dagster's 60 s sensor timeout, and polls faster than 10 ms only load the ledger.
_RANGES: Mapping[str, _Range] = {
    "bar_deadline_s": _Range(0, 86_400),
    "max_abs_return": _Range(0, 10, lo_open=True, unit=""),
    "sensor_interval_s": _Range(1, 3_600, whole=True),
    "sensor_hold_s": _Range(0, 50),
    "sensor_poll_s": _Range(0.01, 10),
    "sensor_gateway_grace_s": _Range(0, 60),
}


def default_ledger_url() -> str:
    """Return the default ledger URL: the SQLite file ``<install root>/data/ledger.sqlite``."""
    return f"sqlite:///{(INSTALL_ROOT / 'data' / 'ledger.sqlite').resolve()}"


def _default_data_dir() -> str:
    return str(INSTALL_ROOT / "data" / "dagster")


def _default_dashboard() -> str:
    return str(INSTALL_ROOT / "out" / "dashboard.html")


def _check_url(key: str, url: str) -> None:
    if "://" not in url:
        raise ConfigError(
            key,
            "must be a SQLAlchemy URL such as sqlite:///path/ledger.sqlite or "
            f"postgresql+psycopg://host/db, got {url!r}",
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything a command or the code location runs with; validated when built.

    ``config`` is the rules' and the execution core's configuration (its
    ``execution.ledger_url`` equals ``ledger_url``). Locations are plain paths or URLs (no
    secrets: venue credentials stay in the venues' own variables, read only by
    :mod:`resources.brokers.registry`; ``alert_webhook``, the URL the alert sensors post to
    (docs/spec-12-risk.md §12.8), is a secret of Slack's kind: it is never printed); an empty
    ``instruments``, ``prices`` or ``returns_source`` means the bundled symbol table, no
    reference prices and no returns file. Times are seconds. See :data:`ENVIRONMENT` for each
    field's variable.
    """

    config: AllocatorConfig = field(default_factory=AllocatorConfig)
    config_path: str = ""
    ledger_url: str = field(default_factory=default_ledger_url)
    instruments: str = ""
    prices: str = ""
    data_dir: str = field(default_factory=_default_data_dir)
    dashboard: str = field(default_factory=_default_dashboard)
    returns_source: str = ""
    bar_deadline_s: float = 60.0
    max_abs_return: float = 0.5
    sensor_interval_s: int = 1
    sensor_hold_s: float = 4.8
    sensor_poll_s: float = 0.2
    sensor_gateway_grace_s: float = 1.0
    sensors_running: bool = False
    bar_job: BarJob = "bar_job"
    alert_webhook: str = ""

    def __post_init__(self) -> None:
        """Check every field, then put the resolved ``ledger_url`` into ``config.execution``."""
        for name, bounds in _RANGES.items():
            bounds.check(name, getattr(self, name))
        _check_url("ledger_url", self.ledger_url)
        for name in ("data_dir", "dashboard"):
            if not getattr(self, name):
                raise ConfigError(name, "must not be empty")
        if self.alert_webhook and not self.alert_webhook.startswith(("http://", "https://")):
            raise ConfigError(
                "alert_webhook",
                "must be an http(s) URL such as a Slack incoming webhook (value not shown)",
            )
        if self.bar_job not in _BAR_JOBS:
            raise ConfigError("bar_job", f"must be one of {list(_BAR_JOBS)}, got {self.bar_job!r}")
        if self.config.execution.ledger_url != self.ledger_url:
            # One URL in the record: the configuration carries the resolved one.
            execution = replace(self.config.execution, ledger_url=self.ledger_url)
            object.__setattr__(self, "config", replace(self.config, execution=execution))


def _number(variable: str, text: str, bounds: _Range) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(variable, f"must be a number, got {text!r}") from None
    bounds.check(variable, value)
    return value


def _from_env(env: Mapping[str, str]) -> dict[str, object]:
    """Return the fields the environment sets, each checked and named by its variable if wrong.

    An empty variable counts as unset; ``ALLOCATOR_CONFIG`` is left to :func:`load_settings`.
    """
    out: dict[str, object] = {}
    for name, variable in ENVIRONMENT.items():
        text = env.get(variable, "").strip()
        if not text or name == "config_path":
            continue
        if name in _RANGES:
            value = _number(variable, text, _RANGES[name])
            out[name] = int(value) if _RANGES[name].whole else value
        elif name == "sensors_running":
            if text not in ("0", "1"):
                raise ConfigError(variable, f"must be 0 or 1, got {text!r}")
            out[name] = text == "1"
        elif name == "bar_job":
            if text not in _BAR_JOBS:
                raise ConfigError(variable, f"must be one of {list(_BAR_JOBS)}, got {text!r}")
            out[name] = text
        else:
            if name == "ledger_url":
                _check_url(variable, text)
            out[name] = text
    return out


def load_settings(
    *,
    config: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    ledger_url: str | None = None,
    instruments: str | os.PathLike[str] | None = None,
    prices: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    dashboard: str | os.PathLike[str] | None = None,
    returns_source: str | os.PathLike[str] | None = None,
    bar_deadline_s: float | None = None,
    max_abs_return: float | None = None,
    sensor_interval_s: int | None = None,
    sensor_hold_s: float | None = None,
    sensor_poll_s: float | None = None,
    sensor_gateway_grace_s: float | None = None,
    sensors_running: bool | None = None,
    bar_job: BarJob | None = None,
    alert_webhook: str | None = None,
) -> Settings:
    """Resolve the settings of this process: the file, then ``env``, then the flags given here.

    ``env`` defaults to ``os.environ``; a flag left ``None`` is not given (see the module doc).

    Raises
    ------
    ConfigError
        A value is wrong; the message names its key, variable or flag.
    """
    environ = os.environ if env is None else env
    path = str(config) if config is not None else environ.get("ALLOCATOR_CONFIG", "").strip()
    allocator_config = AllocatorConfig.from_toml(path) if path else AllocatorConfig()
    resolved: dict[str, object] = {}
    if allocator_config.execution.ledger_url:
        resolved["ledger_url"] = allocator_config.execution.ledger_url
    resolved.update(_from_env(environ))
    flags: dict[str, object] = {
        "ledger_url": ledger_url,
        "instruments": None if instruments is None else str(instruments),
        "prices": None if prices is None else str(prices),
        "data_dir": None if data_dir is None else str(data_dir),
        "dashboard": None if dashboard is None else str(dashboard),
        "returns_source": None if returns_source is None else str(returns_source),
        "bar_deadline_s": bar_deadline_s,
        "max_abs_return": max_abs_return,
        "sensor_interval_s": sensor_interval_s,
        "sensor_hold_s": sensor_hold_s,
        "sensor_poll_s": sensor_poll_s,
        "sensor_gateway_grace_s": sensor_gateway_grace_s,
        "sensors_running": sensors_running,
        "bar_job": bar_job,
        "alert_webhook": alert_webhook,
    }
    resolved.update({k: v for k, v in flags.items() if v is not None})
    return Settings(config=allocator_config, config_path=path, **resolved)  # type: ignore[arg-type]
