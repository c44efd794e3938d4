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
    "GatewayConfig",
    "RiskConfig",
    "RiskLimits",
    "RoutingConfig",
    "SizingConfig",
    "VenueRiskLimits",
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


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayConfig:
    """The strategy gateway's limits and its returns check (``allocator serve``).

    ``max_body_bytes`` is the largest request body ([1024, 67108864], default 1 MiB; a larger
    one is answered 413); ``max_rows`` the most intents or returns in one request ([1, 100000],
    default 10000; more is 413); ``rate_per_s`` the requests per second one strategy may make
    on average and ``burst`` how many it may make at once (a token bucket: (0, 10000] per
    second, [1, 100000]; beyond it 429); ``return_tolerance`` the largest
    |reported return − attributed P&L ÷ published capital| on a session the strategy traded
    through the allocator before the returns check fails ([0, 1], default 0.005);
    ``events_poll_s`` how often an event stream looks for new rows ([0.05, 60] s, default
    0.25); ``port`` the port ``allocator serve`` listens on by default ([1, 65535]).
    """

    SECTION: ClassVar[str] = "gateway"
    max_body_bytes: int = 1_048_576
    max_rows: int = 10_000
    rate_per_s: float = 50.0
    burst: int = 100
    return_tolerance: float = 0.005
    events_poll_s: float = 0.25
    port: int = 8787

    def __post_init__(self) -> None:
        """Check every field; raise ``ConfigError`` naming the key."""
        _whole(self.SECTION, "max_body_bytes", self.max_body_bytes, 1024, 64 * 1_048_576)
        _whole(self.SECTION, "max_rows", self.max_rows, 1, 100_000)
        _finite(self.SECTION, "rate_per_s", self.rate_per_s)
        if not 0 < self.rate_per_s <= 10_000:
            raise ConfigError(
                "gateway.rate_per_s", f"must lie in (0, 10000] per second, got {self.rate_per_s!r}"
            )
        _whole(self.SECTION, "burst", self.burst, 1, 100_000)
        _finite(self.SECTION, "return_tolerance", self.return_tolerance)
        if not 0 <= self.return_tolerance <= 1:
            raise ConfigError(
                "gateway.return_tolerance", f"must lie in [0, 1], got {self.return_tolerance!r}"
            )
        _seconds(self.SECTION, "events_poll_s", self.events_poll_s, 0.05, 60.0)
        _whole(self.SECTION, "port", self.port, 1, 65_535)


# -- the pre-trade risk stage (docs/spec-12-risk.md) ------------------------------------------

RISK_ASSET_CLASSES = ("equity", "etf", "option", "future", "forex", "crypto")
"""The asset classes a ``[risk.asset_classes.X]`` table may name (SPEC §8's; a test pins them to
:class:`allocator.execution.orders.AssetClass`, which this module cannot import)."""
RISK_VENUES = ("alpaca", "ibkr", "ccxt")
"""The venues a ``[risk.venues.X]`` table may name (:class:`~allocator.execution.orders.Venue`)."""
MAX_PRICE_AGE_S = 7 * 86_400.0
MAX_PRICE_MOVE = Decimal(10)
MAX_ORDERS_PER_BAR = 10**6
MAX_ORDERS_PER_SECOND = 10_000.0
MAX_ORDERS_PER_MINUTE = 10**6
ALPACA_ORDERS_PER_MINUTE = 200
"""Alpaca's documented trading API limit (200 requests per minute): the default of
``[risk.venues.alpaca] orders_per_minute``."""


def _optional_money(obj: object, key: str, name: str, hi: Decimal, *, what: str = "") -> None:
    """Convert ``obj.name`` (``None``: no limit) to a Decimal in (0, ``hi``] in place."""
    value = getattr(obj, name)
    if value is None:
        return
    section, _, field_name = f"{key}.{name}".rpartition(".")
    number = _decimal(section, field_name, value)
    object.__setattr__(obj, name, number)
    if not 0 < number <= hi:
        raise ConfigError(f"{key}.{name}", f"must lie in (0, {hi}]{what}, got {number}")


@dataclass(frozen=True, kw_only=True, slots=True)
class RiskLimits:
    """Per-order and per-symbol caps; ``None`` is no cap (docs/spec-12-risk.md §12.2).

    ``max_order_notional`` caps one net order's ``qty × reference price`` (quote currency,
    (0, 10^12]); ``max_order_qty`` its quantity (base units, (0, 10^15]);
    ``max_symbol_position`` the book's net position in the symbol after the bar, valued at the
    reference price (quote currency, (0, 10^12]). The book-wide values live on
    :class:`RiskConfig`; ``[risk.asset_classes.X]`` and ``[risk.instruments.SYMBOL]`` tables
    override them key by key (the instrument's over the asset class's over the book's).
    """

    KEY: ClassVar[str] = "risk"
    KEYS: ClassVar[tuple[str, ...]] = ("max_order_notional", "max_order_qty", "max_symbol_position")
    max_order_notional: Decimal | None = None
    max_order_qty: Decimal | None = None
    max_symbol_position: Decimal | None = None

    def check(self, key: str) -> None:
        """Convert every cap to Decimal and check its range; errors start with ``key``."""
        _optional_money(self, key, "max_order_notional", MAX_MONEY)
        _optional_money(self, key, "max_order_qty", Decimal(MAX_INTENT_QTY), what=" base units")
        _optional_money(self, key, "max_symbol_position", MAX_MONEY)

    def __post_init__(self) -> None:
        """Check the caps; an error names ``risk.KEY`` (a table renames it to its own key)."""
        self.check(self.KEY)


@dataclass(frozen=True, kw_only=True, slots=True)
class VenueRiskLimits:
    """One venue's order rate limits (docs/spec-12-risk.md §12.4); ``None`` is no limit.

    ``orders_per_second`` ((0, 10000]) and ``orders_per_minute`` ([1, 10^6]) count the orders
    sent to the venue in any window of 1 s or 60 s of bar time; the plan refuses (``risk_rate``)
    the orders beyond them, and :func:`~allocator.execution.bar.run_bar` paces the ones it sends
    (:class:`~allocator.execution.lifecycle.RateLimit`).
    """

    KEY: ClassVar[str] = "risk.venues.VENUE"
    orders_per_second: float | None = None
    orders_per_minute: int | None = None

    def __post_init__(self) -> None:
        """Check both ranges (errors named as in :attr:`KEY` until the table renames them)."""
        self.check(self.KEY)

    def check(self, key: str) -> None:
        """Check both ranges; errors start with ``key``."""
        ops = self.orders_per_second
        if ops is not None:
            if isinstance(ops, bool) or not isinstance(ops, int | float):
                raise ConfigError(f"{key}.orders_per_second", f"must be a number, got {ops!r}")
            object.__setattr__(self, "orders_per_second", float(ops))
            _finite(key, "orders_per_second", float(ops))
            if not 0 < ops <= MAX_ORDERS_PER_SECOND:
                raise ConfigError(
                    f"{key}.orders_per_second",
                    f"must lie in (0, {MAX_ORDERS_PER_SECOND:g}], got {ops!r}",
                )
        opm = self.orders_per_minute
        if opm is not None:
            if isinstance(opm, bool) or not isinstance(opm, int):
                raise ConfigError(
                    f"{key}.orders_per_minute", f"must be a whole number, got {opm!r}"
                )
            _whole(key, "orders_per_minute", opm, 1, MAX_ORDERS_PER_MINUTE)


def _default_venues() -> Mapping[str, VenueRiskLimits]:
    return types.MappingProxyType(
        {"alpaca": VenueRiskLimits(orders_per_minute=ALPACA_ORDERS_PER_MINUTE)}
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class RiskConfig:
    """The pre-trade risk stage and the kill switch (``[risk]``; docs/spec-12-risk.md).

    Every limit is optional (absent: not applied), except Alpaca's order rate, which defaults
    to its documented 200 orders per minute. Money and ratios are Decimal.

    Attributes
    ----------
    max_order_notional, max_order_qty, max_symbol_position : Decimal or None
        The book-wide caps of :class:`RiskLimits`.
    max_gross_exposure : Decimal or None
        The book's gross exposure after the bar, Σ |net position| × reference price over its
        symbols, as a multiple of ``allocation.total_capital`` ((0, 100]).
    max_price_age_s : float or None
        The oldest a reference price may be when the bar is planned (seconds, (0, 604800]).
    max_price_move : Decimal or None
        The largest |price ÷ previous bar's price − 1| of a symbol ((0, 10]).
    max_orders_per_bar : int or None
        The most intents of one strategy that take part in one bar ([1, 10^6]).
    kill_drawdown : Decimal or None
        The book's equity ÷ its peak − 1 at or below which the kill switch puts the book in
        ``reducing`` ((-1, 0)).
    kill_daily_loss : Decimal or None
        The book's equity ÷ its equity at the session's start − 1 at or below which the kill
        switch trips ((-1, 0)).
    asset_classes, instruments : mapping of str to RiskLimits
        Overrides of the per-order and per-symbol caps.
    venues : mapping of str to VenueRiskLimits
        Order rate limits per venue (Alpaca's default: 200 per minute).
    """

    SECTION: ClassVar[str] = "risk"
    max_order_notional: Decimal | None = None
    max_order_qty: Decimal | None = None
    max_symbol_position: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    max_price_age_s: float | None = None
    max_price_move: Decimal | None = None
    max_orders_per_bar: int | None = None
    kill_drawdown: Decimal | None = None
    kill_daily_loss: Decimal | None = None
    asset_classes: Mapping[str, RiskLimits] = field(default_factory=dict)
    instruments: Mapping[str, RiskLimits] = field(default_factory=dict)
    venues: Mapping[str, VenueRiskLimits] = field(default_factory=_default_venues)

    def __post_init__(self) -> None:
        """Convert and check every value; raise :class:`ConfigError` naming the dotted key."""
        key = self.SECTION
        RiskLimits.check(self, key)  # type: ignore[arg-type]
        _optional_money(self, key, "max_gross_exposure", MAX_LEVERAGE, what=" × total capital")
        _optional_money(self, key, "max_price_move", MAX_PRICE_MOVE)
        age = self.max_price_age_s
        if age is not None:
            if isinstance(age, bool) or not isinstance(age, int | float):
                raise ConfigError("risk.max_price_age_s", f"must be a number, got {age!r}")
            object.__setattr__(self, "max_price_age_s", float(age))
            _finite(key, "max_price_age_s", float(age))
            if not 0 < age <= MAX_PRICE_AGE_S:
                raise ConfigError(
                    "risk.max_price_age_s", f"must lie in (0, {MAX_PRICE_AGE_S:g}] s, got {age!r}"
                )
        if self.max_orders_per_bar is not None:
            n = self.max_orders_per_bar
            if isinstance(n, bool) or not isinstance(n, int):
                raise ConfigError("risk.max_orders_per_bar", f"must be a whole number, got {n!r}")
            _whole(key, "max_orders_per_bar", n, 1, MAX_ORDERS_PER_BAR)
        for name in ("kill_drawdown", "kill_daily_loss"):
            value = getattr(self, name)
            if value is None:
                continue
            number = _decimal(key, name, value)
            object.__setattr__(self, name, number)
            if not -1 < number < 0:
                raise ConfigError(f"risk.{name}", f"must lie in (-1, 0), got {number}")
        for table, allowed in (("asset_classes", RISK_ASSET_CLASSES), ("instruments", None)):
            entries = getattr(self, table)
            for name, limits in entries.items():
                if allowed is not None and name not in allowed:
                    raise ConfigError(
                        f"risk.{table}.{name}", f"unknown asset class (known: {list(allowed)})"
                    )
                if not isinstance(name, str) or not name or len(name) > 64:
                    raise ConfigError(f"risk.{table}.{name}", "must name a symbol (1-64 chars)")
                if not isinstance(limits, RiskLimits):
                    raise ConfigError(f"risk.{table}.{name}", f"must be a table, got {limits!r}")
            object.__setattr__(self, table, types.MappingProxyType(dict(entries)))
        venues = dict(_default_venues())
        for name, limits in self.venues.items():
            if name not in RISK_VENUES:
                raise ConfigError(
                    f"risk.venues.{name}", f"unknown venue (known: {list(RISK_VENUES)})"
                )
            if not isinstance(limits, VenueRiskLimits):
                raise ConfigError(f"risk.venues.{name}", f"must be a table, got {limits!r}")
            default = venues.get(name, VenueRiskLimits())
            # A key the table leaves out keeps the venue's default (Alpaca's 200 per minute).
            venues[name] = VenueRiskLimits(
                orders_per_second=limits.orders_per_second
                if limits.orders_per_second is not None
                else default.orders_per_second,
                orders_per_minute=limits.orders_per_minute
                if limits.orders_per_minute is not None
                else default.orders_per_minute,
            )
        object.__setattr__(self, "venues", types.MappingProxyType(venues))

    def limits_for(self, symbol: str, asset_class: str) -> RiskLimits:
        """Return ``symbol``'s caps: the instrument's, else the asset class's, else the book's."""
        out: dict[str, Decimal | None] = {}
        layers = (self.instruments.get(symbol), self.asset_classes.get(asset_class))
        for name in RiskLimits.KEYS:
            value = getattr(self, name)
            for layer in layers:
                if layer is not None and getattr(layer, name) is not None:
                    value = getattr(layer, name)
                    break
            out[name] = value
        return RiskLimits(**out)

    @property
    def has_symbol_limits(self) -> bool:
        """Whether any per-order or per-symbol cap is set anywhere."""
        tables = (self, *self.asset_classes.values(), *self.instruments.values())
        return any(getattr(t, n) is not None for t in tables for n in RiskLimits.KEYS)

    @classmethod
    def from_mapping(cls, raw: Any) -> RiskConfig:
        """Build from the ``[risk]`` table and its sub-tables; an error names the dotted key."""
        if not isinstance(raw, Mapping):
            raise ConfigError("risk", f"must be a table, got {raw!r}")
        scalars = {f.name for f in fields(cls)} - {"asset_classes", "instruments", "venues"}
        kwargs: dict[str, Any] = {}
        for name, value in raw.items():
            if name in ("asset_classes", "instruments"):
                kwargs[name] = {
                    sub: _sub_table(RiskLimits, f"risk.{name}.{sub}", body)
                    for sub, body in _table(f"risk.{name}", value).items()
                }
            elif name == "venues":
                kwargs[name] = {
                    sub: _sub_table(VenueRiskLimits, f"risk.venues.{sub}", body)
                    for sub, body in _table("risk.venues", value).items()
                }
            elif name in scalars:
                kwargs[name] = _risk_scalar(f"risk.{name}", value)
            else:
                known = sorted({f.name for f in fields(cls)})
                raise ConfigError(f"risk.{name}", f"unknown key (known: {known})")
        return cls(**kwargs)


def _table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a table, got {value!r}")
    return value


def _risk_scalar(key: str, value: Any) -> Any:
    """Return a TOML scalar of ``[risk]``: a number (never a bool) or a decimal string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(key, f"must be a number, got {value!r}")
    return value


def _sub_table(cls: type[Any], key: str, body: Any) -> Any:
    """Build one ``RiskLimits`` or ``VenueRiskLimits`` table; its errors name ``key``."""
    known = {f.name for f in fields(cls)}
    table = _table(key, body)
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"unknown key (known: {sorted(known)})")
    values = {k: _risk_scalar(f"{key}.{k}", v) for k, v in table.items()}
    try:
        return cls(**values)
    except ConfigError as exc:  # the record names its keys under its own prefix
        raise ConfigError(key + exc.key[len(cls.KEY) :], exc.problem) from None


_SECTIONS: tuple[type[Any], ...] = (
    SizingConfig,
    CorrelationConfig,
    BreakerConfig,
    AllocationConfig,
    CalendarConfig,
    ExecutionConfig,
    RoutingConfig,
    GatewayConfig,
    RiskConfig,
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
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> AllocatorConfig:
        """Build from a nested mapping ``{section: {key: value}}`` (e.g. parsed TOML)."""
        by_name = {section.SECTION: section for section in _SECTIONS}
        unknown = sorted(set(raw) - set(by_name))
        if unknown:
            raise ConfigError(unknown[0], f"unknown section (known: {sorted(by_name)})")
        built = {
            name: by_name[name].from_mapping(value)
            if hasattr(by_name[name], "from_mapping")
            else _build_section(by_name[name], value)
            for name, value in raw.items()
        }
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
