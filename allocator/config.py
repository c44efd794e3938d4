"""Frozen, validated configuration with every default of SPEC.md.

Each section is an immutable, keyword-only dataclass that checks its own values when it is
built; :class:`AllocatorConfig` groups them and loads from TOML (SPEC §11 keys). An unknown
section or key, a value of the wrong type, a negative window or an out-of-range threshold is a
:class:`~allocator.errors.ConfigError` whose message starts with the dotted key.
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

from allocator.errors import ConfigError

__all__ = [
    "AllocationConfig",
    "AllocatorConfig",
    "BreakerConfig",
    "CalendarConfig",
    "CorrelationConfig",
    "ExecutionConfig",
    "RoutingConfig",
    "SizingConfig",
]

SizingMethod = Literal["inverse_vol", "erc"]


def _positive_int(section: str, name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{section}.{name}", f"must be a whole number >= 1, got {value!r}")


def _finite(section: str, name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{section}.{name}", f"must be a finite number, got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class SizingConfig:
    """Risk-parity sizing (SPEC §2, §4). Windows and the schedule count sessions."""

    SECTION: ClassVar[str] = "sizing"
    method: SizingMethod = "inverse_vol"
    vol_window: int = 60
    annualization: int = 252
    rebalance_every: int = 60

    def __post_init__(self) -> None:
        if self.method not in get_args(SizingMethod):
            raise ConfigError(
                "sizing.method",
                f"must be one of {list(get_args(SizingMethod))}, got {self.method!r}",
            )
        _positive_int(self.SECTION, "annualization", self.annualization)
        _positive_int(self.SECTION, "rebalance_every", self.rebalance_every)
        if self.vol_window < 2:
            raise ConfigError(
                "sizing.vol_window", f"must be >= 2 sessions, got {self.vol_window!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class CorrelationConfig:
    """The correlation drop rule (SPEC §3): strict ``corr > threshold`` for ``persistence``."""

    SECTION: ClassVar[str] = "correlation"
    window: int = 90
    threshold: float = 0.70
    persistence: int = 30

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ConfigError("correlation.window", f"must be >= 2 sessions, got {self.window!r}")
        _positive_int(self.SECTION, "persistence", self.persistence)
        if not -1.0 < self.threshold < 1.0:
            raise ConfigError(
                "correlation.threshold", f"must lie in (-1, 1), got {self.threshold!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerConfig:
    """The drawdown circuit breaker (SPEC §5). Thresholds are month-to-date simple returns."""

    SECTION: ClassVar[str] = "breaker"
    sharpe_window: int = 90
    half_at: float = -0.15
    halt_at: float = -0.25
    recovery_sharpe: float = 0.5
    half_multiplier: float = 0.5

    def __post_init__(self) -> None:
        if self.sharpe_window < 2:
            raise ConfigError(
                "breaker.sharpe_window", f"must be >= 2 sessions, got {self.sharpe_window!r}"
            )
        for name in ("half_at", "halt_at"):
            value = getattr(self, name)
            if not -1.0 < value < 0.0:
                raise ConfigError(f"breaker.{name}", f"must lie in (-1, 0), got {value!r}")
        if self.halt_at > self.half_at:
            raise ConfigError(
                "breaker.halt_at",
                f"must be <= breaker.half_at ({self.half_at!r}), got {self.halt_at!r}",
            )
        _finite(self.SECTION, "recovery_sharpe", self.recovery_sharpe)
        if not 0.0 <= self.half_multiplier <= 1.0:
            raise ConfigError(
                "breaker.half_multiplier", f"must lie in [0, 1], got {self.half_multiplier!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class AllocationConfig:
    """Turning weights into capital (SPEC §6).

    ``redistribute_freed_capital = true`` rescales the final weights so that they sum to the
    same total as the base weights (capital freed by a breaker goes pro rata to the others);
    the default keeps it in cash.
    """

    SECTION: ClassVar[str] = "allocation"
    total_capital: float = 100_000.0
    redistribute_freed_capital: bool = False

    def __post_init__(self) -> None:
        _finite(self.SECTION, "total_capital", self.total_capital)
        if self.total_capital < 0:
            raise ConfigError(
                "allocation.total_capital", f"must be >= 0, got {self.total_capital!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class CalendarConfig:
    """The allocator's clock (SPEC §1): an ``exchange_calendars`` name such as ``XNYS``."""

    SECTION: ClassVar[str] = "calendar"
    name: str = "XNYS"

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("calendar.name", "must not be empty")


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionConfig:
    """Per-bar gating and the ledger's money arithmetic (SPEC §7).

    ``cash_quantum`` is the smallest unit of cash the ledger stores (fees are split to it);
    ``max_leverage`` is the default gross-notional cap per unit of capital; ``bar_tolerance``
    is how many bars in the past an intent may still be accepted by the live inbox, each bar
    lasting ``bar_interval_seconds``; ``ledger_url`` is the ledger's SQLAlchemy URL (empty: the
    SQLite file ``data/ledger.sqlite`` of the project).
    """

    SECTION: ClassVar[str] = "execution"
    max_leverage: float = 1.0
    cash_quantum: str = "0.00000001"
    bar_tolerance: int = 0
    bar_interval_seconds: int = 86_400
    account: str = "paper"
    ledger_url: str = ""

    def __post_init__(self) -> None:
        _finite(self.SECTION, "max_leverage", self.max_leverage)
        if self.max_leverage < 0:
            raise ConfigError("execution.max_leverage", f"must be >= 0, got {self.max_leverage!r}")
        try:
            quantum = Decimal(self.cash_quantum)
        except InvalidOperation:
            raise ConfigError(
                "execution.cash_quantum", f"must be a decimal number, got {self.cash_quantum!r}"
            ) from None
        if not quantum.is_finite() or quantum <= 0:
            raise ConfigError("execution.cash_quantum", f"must be > 0, got {self.cash_quantum!r}")
        if self.bar_tolerance < 0:
            raise ConfigError(
                "execution.bar_tolerance", f"must be >= 0, got {self.bar_tolerance!r}"
            )
        _positive_int(self.SECTION, "bar_interval_seconds", self.bar_interval_seconds)
        if not self.account or not self.account.isalnum():
            raise ConfigError(
                "execution.account", f"must be a non-empty [A-Za-z0-9] name, got {self.account!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class RoutingConfig:
    """Routing by asset class and the multi-broker threshold (SPEC §8)."""

    SECTION: ClassVar[str] = "routing"
    multi_broker_threshold: float = 25_000.0
    proxy_map: Mapping[str, str] = field(default_factory=lambda: {"ES": "SPY", "NQ": "QQQ"})
    crypto_exchange: str = "binance"
    crypto_exchange_map: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _finite(self.SECTION, "multi_broker_threshold", self.multi_broker_threshold)
        if self.multi_broker_threshold < 0:
            raise ConfigError(
                "routing.multi_broker_threshold",
                f"must be >= 0, got {self.multi_broker_threshold!r}",
            )
        for name in ("proxy_map", "crypto_exchange_map"):
            mapping = getattr(self, name)
            for key, value in mapping.items():
                if not isinstance(key, str) or not isinstance(value, str) or not value:
                    raise ConfigError(
                        f"routing.{name}.{key}", f"must map a symbol to a name, got {value!r}"
                    )
            # Freeze the mapping so that the config stays immutable.
            object.__setattr__(self, name, types.MappingProxyType(dict(mapping)))
        if not self.crypto_exchange:
            raise ConfigError("routing.crypto_exchange", "must not be empty")


_SECTIONS: tuple[type[Any], ...] = (
    SizingConfig,
    CorrelationConfig,
    BreakerConfig,
    AllocationConfig,
    CalendarConfig,
    ExecutionConfig,
    RoutingConfig,
)


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check one TOML value against the field's annotation; ints widen to floats."""
    origin = get_origin(hint)
    if origin is Literal:
        if value not in get_args(hint):
            raise ConfigError(key, f"must be one of {list(get_args(hint))}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {value!r}")
        return value
    if origin in (Mapping, dict, typing.Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a table, got {value!r}")
        return dict(value)
    raise ConfigError(key, f"unsupported setting type {hint!r}")  # pragma: no cover


def _build_section(cls: type[Any], raw: Any) -> Any:
    name = cls.SECTION
    if not isinstance(raw, Mapping):
        raise ConfigError(name, f"must be a table, got {raw!r}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}", f"unknown key (known: {sorted(known)})")
    kwargs = {k: _coerce(f"{name}.{k}", hints[k], v) for k, v in raw.items()}
    return cls(**kwargs)


@dataclass(frozen=True, kw_only=True, slots=True)
class AllocatorConfig:
    """The whole configuration; every section defaults to SPEC's values."""

    sizing: SizingConfig = field(default_factory=SizingConfig)
    correlation: CorrelationConfig = field(default_factory=CorrelationConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    calendar: CalendarConfig = field(default_factory=CalendarConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> AllocatorConfig:
        """Build from a nested mapping ``{section: {key: value}}`` (e.g. parsed TOML)."""
        by_name = {section.SECTION: section for section in _SECTIONS}
        unknown = sorted(set(raw) - set(by_name))
        if unknown:
            raise ConfigError(unknown[0], f"unknown section (known: {sorted(by_name)})")
        built = {name: _build_section(by_name[name], value) for name, value in raw.items()}
        return cls(**built)

    @classmethod
    def from_toml(cls, path: str | Path) -> AllocatorConfig:
        """Load a TOML file; a syntax error names the file, a bad value names its key."""
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(str(source), f"cannot read the config file: {exc.strerror}") from exc
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(source), f"not valid TOML: {exc}") from exc
        try:
            return cls.from_mapping(raw)
        except ConfigError as exc:
            raise ConfigError(exc.key, f"{exc.problem} (in {source})") from None
