"""Frozen, validated configuration with every default of SPEC.md (the TOML keys of SPEC §11).

Each section is an immutable, keyword-only dataclass that checks its own values when it is
built; :class:`AllocatorConfig` groups them and loads from TOML. An unknown section or key, a
value of the wrong type or a number outside its range is a
:class:`~allocator.errors.ConfigError` whose message starts with the dotted key
(``execution.bar_tolerance: must be <= 1000 bars, got 1000000``). Every number has a range, so
that a value the code cannot use (a tolerance that overflows a date, a window that would
allocate terabytes) is refused here and not deep inside a run.

Money and the ratios used in money arithmetic are :class:`~decimal.Decimal`
(``allocation.total_capital``, ``routing.multi_broker_threshold``, ``execution.cash_quantum``,
``execution.max_leverage``): a TOML number becomes a Decimal through its text
(``Decimal(str(v))``), never through the binary float, so ``98000.10`` stays exactly that. Why
here and not at each call site: the ledger's arithmetic is exact, and a conversion done once at
the edge cannot be forgotten (or done through ``float``) by one of the callers. The rules engine
converts ``total_capital`` to float at its own boundary (its analytics are float64).

Where the configuration file comes from, and how the ``ALLOCATOR_*`` environment and the
command-line flags override it, is :mod:`allocator.settings`.
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

# Upper bounds. Windows and schedules count sessions: 10,000 is about 40 years of XNYS sessions
# (the correlation kernel holds window × strategies values). Money stays below 10^12 so that
# the rules engine's float64 keeps every cent exact (2^53 ≈ 9 × 10^15 cents).
MAX_SESSIONS = 10_000
MAX_MONEY = Decimal(10) ** 12
MAX_LEVERAGE = Decimal(100)
MAX_ANNUALIZATION = 366
MAX_ABS_SHARPE = 10.0
# A past bar may be at most 1,000 bars old and a bar at most a week long: the oldest accepted
# bar end (now − tolerance × interval) then stays within about 20 years of now.
MAX_BAR_TOLERANCE = 1_000
MAX_BAR_INTERVAL_S = 7 * 86_400
MIN_CASH_QUANTUM = Decimal("1e-12")
MAX_INTENT_QTY = 10**15
MAX_FILL_TIMEOUT_S = 3600.0
MIN_POLL_S = 0.01
MAX_POLL_S = 60.0
MAX_RETRY_BACKOFF_S = 3600.0
MAX_RETRY_DELAY_S = 3600.0  # the cap of one retry's backoff (docs/decisions/0012)
MAX_BAR_RETRIES = 100


def _whole(section: str, name: str, value: int, lo: int, hi: int, unit: str = "") -> None:
    """``lo <= value <= hi``; the lower-bound message keeps the established wording."""
    suffix = f" {unit}" if unit else ""
    if value < lo:
        if unit:
            raise ConfigError(f"{section}.{name}", f"must be >= {lo}{suffix}, got {value!r}")
        raise ConfigError(f"{section}.{name}", f"must be a whole number >= {lo}, got {value!r}")
    if value > hi:
        raise ConfigError(f"{section}.{name}", f"must be <= {hi}{suffix}, got {value!r}")


def _finite(section: str, name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{section}.{name}", f"must be a finite number, got {value!r}")


def _seconds(section: str, name: str, value: float, lo: float, hi: float) -> None:
    """Check that ``value`` is a finite number of seconds in [lo, hi]."""
    _finite(section, name, value)
    if not lo <= value <= hi:
        raise ConfigError(f"{section}.{name}", f"must lie in [{lo:g}, {hi:g}] s, got {value!r}")


def _decimal(section: str, name: str, value: object) -> Decimal:
    """``value`` as an exact Decimal (a float through its text); a finite one."""
    key = f"{section}.{name}"
    if isinstance(value, bool):
        raise ConfigError(key, f"must be a number, got {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | float | str):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ConfigError(key, f"must be a decimal number, got {value!r}") from None
    else:
        raise ConfigError(key, f"must be a number, got {value!r}")
    if not number.is_finite():
        raise ConfigError(key, f"must be a finite number, got {value!r}")
    return number


def _money_field(obj: object, section: str, name: str, lo: Decimal, hi: Decimal) -> Decimal:
    """Convert ``obj.name`` to Decimal in place (the dataclass is frozen) and check its range."""
    number = _decimal(section, name, getattr(obj, name))
    object.__setattr__(obj, name, number)
    if number < lo:
        raise ConfigError(f"{section}.{name}", f"must be >= {lo}, got {number}")
    if number > hi:
        raise ConfigError(f"{section}.{name}", f"must be <= {hi}, got {number}")
    return number


@dataclass(frozen=True, kw_only=True, slots=True)
class SizingConfig:
    """Risk-parity sizing (SPEC §2, §4). Windows and the schedule count sessions."""

    SECTION: ClassVar[str] = "sizing"
    method: SizingMethod = "inverse_vol"
    vol_window: int = 60
    annualization: int = 252
    rebalance_every: int = 60

    def __post_init__(self) -> None:
        """Check ``method`` and the windows' ranges; raise :class:`ConfigError` if one is wrong."""
        if self.method not in get_args(SizingMethod):
            raise ConfigError(
                "sizing.method",
                f"must be one of {list(get_args(SizingMethod))}, got {self.method!r}",
            )
        _whole(self.SECTION, "annualization", self.annualization, 1, MAX_ANNUALIZATION)
        _whole(self.SECTION, "rebalance_every", self.rebalance_every, 1, MAX_SESSIONS)
        _whole(self.SECTION, "vol_window", self.vol_window, 2, MAX_SESSIONS, "sessions")


@dataclass(frozen=True, kw_only=True, slots=True)
class CorrelationConfig:
    """The correlation drop rule (SPEC §3): strict ``corr > threshold`` for ``persistence``."""

    SECTION: ClassVar[str] = "correlation"
    window: int = 90
    threshold: float = 0.70
    persistence: int = 30

    def __post_init__(self) -> None:
        """Check the window, the persistence and ``-1 < threshold < 1``; raise ``ConfigError``."""
        _whole(self.SECTION, "window", self.window, 2, MAX_SESSIONS, "sessions")
        _whole(self.SECTION, "persistence", self.persistence, 1, MAX_SESSIONS)
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
        """Check ``halt_at <= half_at`` in (-1, 0) and every other range; raise ``ConfigError``."""
        _whole(self.SECTION, "sharpe_window", self.sharpe_window, 2, MAX_SESSIONS, "sessions")
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
        if not -MAX_ABS_SHARPE <= self.recovery_sharpe <= MAX_ABS_SHARPE:
            raise ConfigError(
                "breaker.recovery_sharpe",
                f"must lie in [{-MAX_ABS_SHARPE:g}, {MAX_ABS_SHARPE:g}], "
                f"got {self.recovery_sharpe!r}",
            )
        if not 0.0 <= self.half_multiplier <= 1.0:
            raise ConfigError(
                "breaker.half_multiplier", f"must lie in [0, 1], got {self.half_multiplier!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class AllocationConfig:
    """Turning weights into capital (SPEC §6).

    ``total_capital`` is the book in account currency (a Decimal in [0, 10^12]).
    ``redistribute_freed_capital = true`` rescales the final weights so that they sum to the
    same total as the base weights (capital freed by a breaker goes pro rata to the others);
    the default keeps it in cash.
    """

    SECTION: ClassVar[str] = "allocation"
    total_capital: Decimal = Decimal(100_000)
    redistribute_freed_capital: bool = False

    def __post_init__(self) -> None:
        """Convert ``total_capital`` to Decimal (through its text); check it is in [0, 10^12]."""
        _money_field(self, self.SECTION, "total_capital", Decimal(0), MAX_MONEY)


@dataclass(frozen=True, kw_only=True, slots=True)
class CalendarConfig:
    """The allocator's clock (SPEC §1): an ``exchange_calendars`` name such as ``XNYS``."""

    SECTION: ClassVar[str] = "calendar"
    name: str = "XNYS"

    def __post_init__(self) -> None:
        """Refuse an empty calendar name with :class:`ConfigError`."""
        if not self.name:
            raise ConfigError("calendar.name", "must not be empty")


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionConfig:
    """Per-bar gating and the ledger's money arithmetic (SPEC §7).

    ``cash_quantum`` is the smallest unit of cash the ledger stores (fees are split to it; a
    Decimal in [10^-12, 1]); ``max_leverage`` is the default gross-notional cap per unit of
    capital (a Decimal in [0, 100]); ``bar_tolerance`` is how many bars in the past an intent
    may still be accepted by the live inbox ([0, 1000]), each bar lasting
    ``bar_interval_seconds`` ([1, 604800]: a week at most); ``ledger_url`` is the ledger's
    SQLAlchemy URL (empty: the environment's, else the default file; see
    :mod:`allocator.settings`). ``max_intent_qty`` is the largest ``|qty|`` of one intent,
    in lots of its symbol ([1, 10^15], default 10^12): a larger one is refused ``invalid``.
    ``fill_timeout_s`` is the bar's fill deadline: how long a bar follows its orders before it
    cancels what is left of them (seconds in [0, 3600], default 30); ``poll_s`` how often it
    asks a venue about an open order meanwhile (seconds in [0.01, 60], default 0.5).
    ``retry_backoff_s`` is the bar lane's backoff: a failed bar is retried
    ``retry_backoff_s × 2**attempts`` seconds after its failure, capped at an hour (seconds in
    [0, 3600], default 5); after ``max_bar_retries`` failed retries ([0, 100], default 3) the
    lane is halted until an operator runs ``allocator bar retry`` or ``abandon``.
    """

    SECTION: ClassVar[str] = "execution"
    max_leverage: Decimal = Decimal(1)
    cash_quantum: Decimal = Decimal("0.00000001")
    bar_tolerance: int = 0
    bar_interval_seconds: int = 86_400
    account: str = "paper"
    ledger_url: str = ""
    max_intent_qty: int = 10**12
    fill_timeout_s: float = 30.0
    poll_s: float = 0.5
    retry_backoff_s: float = 5.0
    max_bar_retries: int = 3

    def __post_init__(self) -> None:
        """Convert the money fields to Decimal and check every field; raise ``ConfigError``."""
        _seconds(self.SECTION, "retry_backoff_s", self.retry_backoff_s, 0.0, MAX_RETRY_BACKOFF_S)
        _whole(self.SECTION, "max_bar_retries", self.max_bar_retries, 0, MAX_BAR_RETRIES)
        _whole(self.SECTION, "max_intent_qty", self.max_intent_qty, 1, MAX_INTENT_QTY)
        _seconds(self.SECTION, "fill_timeout_s", self.fill_timeout_s, 0.0, MAX_FILL_TIMEOUT_S)
        _seconds(self.SECTION, "poll_s", self.poll_s, MIN_POLL_S, MAX_POLL_S)
        _money_field(self, self.SECTION, "max_leverage", Decimal(0), MAX_LEVERAGE)
        quantum = _decimal(self.SECTION, "cash_quantum", self.cash_quantum)
        object.__setattr__(self, "cash_quantum", quantum)
        if quantum <= 0:
            raise ConfigError("execution.cash_quantum", f"must be > 0, got {quantum}")
        if not MIN_CASH_QUANTUM <= quantum <= 1:
            raise ConfigError("execution.cash_quantum", f"must lie in [1e-12, 1], got {quantum}")
        if self.bar_tolerance < 0:
            raise ConfigError(
                "execution.bar_tolerance", f"must be >= 0, got {self.bar_tolerance!r}"
            )
        if self.bar_tolerance > MAX_BAR_TOLERANCE:
            raise ConfigError(
                "execution.bar_tolerance",
                f"must be <= {MAX_BAR_TOLERANCE} bars, got {self.bar_tolerance!r}",
            )
        _whole(
            self.SECTION, "bar_interval_seconds", self.bar_interval_seconds, 1, MAX_BAR_INTERVAL_S
        )
        if not self.account or not self.account.isalnum():
            raise ConfigError(
                "execution.account", f"must be a non-empty [A-Za-z0-9] name, got {self.account!r}"
            )
        if self.ledger_url and "://" not in self.ledger_url:
            raise ConfigError(
                "execution.ledger_url",
                "must be a SQLAlchemy URL such as sqlite:///path/ledger.sqlite, "
                f"got {self.ledger_url!r}",
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class RoutingConfig:
    """Routing by asset class and the multi-broker threshold (SPEC §8).

    ``multi_broker_threshold`` is total capital in account currency (a Decimal in
    [0, 10^12]); ``crypto_exchange`` is the ccxt exchange the ``allocator broker`` commands
    use when ``CCXT_EXCHANGE`` is not set.
    """

    SECTION: ClassVar[str] = "routing"
    multi_broker_threshold: Decimal = Decimal(25_000)
    proxy_map: Mapping[str, str] = field(default_factory=lambda: {"ES": "SPY", "NQ": "QQQ"})
    crypto_exchange: str = "binance"

    def __post_init__(self) -> None:
        """Convert the threshold to Decimal, check and freeze ``proxy_map``, check the exchange."""
        _money_field(self, self.SECTION, "multi_broker_threshold", Decimal(0), MAX_MONEY)
        for key, value in self.proxy_map.items():
            if not isinstance(key, str) or not isinstance(value, str) or not value:
                raise ConfigError(
                    f"routing.proxy_map.{key}", f"must map a symbol to a name, got {value!r}"
                )
        # Freeze the mapping so that the config stays immutable.
        object.__setattr__(self, "proxy_map", types.MappingProxyType(dict(self.proxy_map)))
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
    """Check one TOML value against the field's annotation and return it converted.

    Ints widen to floats, and a Decimal field takes a number or a decimal string through its
    text (never a float).
    """
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
    if hint is Decimal:
        section, _, name = key.partition(".")
        return _decimal(section, name, value)
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
