"""The broker registry: every venue the pipeline or the command line trades is built here.

One table (:data:`VENUES`: each venue's mode variable and how its real adapter is built from
the environment) and one rule, the venue's mode (SPEC §8), read by :func:`venue_mode` from
``<VENUE>_MODE`` (``ALPACA_MODE``, ``CCXT_MODE``, ``IB_MODE``):

* ``sim`` (the default, also when empty): the built-in simulated venue
  (:mod:`resources.brokers.paper`), its orders kept in the ledger (in memory without one);
* ``paper``: the venue's own paper or testnet account through the real adapter (Alpaca's
  paper URL, IB's paper TWS/Gateway port, the Binance/Bybit testnet);
* ``live``: real money, through the real adapter, which refuses ``live`` unless it points at
  the venue's live URL and refuses ``paper`` on the live URL
  (:func:`resources.brokers.common.check_mode`).

:func:`pipeline_venues` (what ``bar_job`` trades and checks, ``assets/execution.py``,
``assets/checks.py``, and what the demo, ``allocator net`` and ``allocator bar`` trade) and
:func:`operator_venue` (one venue for ``allocator broker submit|lookup|reconcile`` and the live
smoke tests) build each venue with the same :func:`build_venue` from the same settings and
environment, so the pipeline and the operator always talk to the same sink. Every broker built
here has a ``mode`` attribute (``sim``, ``paper`` or ``live``): the mode journaled on its
orders.

Connection settings, read from the environment when the adapter is built and passed on, never
printed or stored (SPEC §8 modes, README "Operating a venue"):

* ``alpaca``: ``ALPACA_API_KEY``, ``ALPACA_SECRET_KEY``, optional ``ALPACA_BASE_URL``.
* ``ccxt``: ``CCXT_EXCHANGE`` (default: the configuration's ``routing.crypto_exchange``),
  ``CCXT_API_KEY``, ``CCXT_SECRET``, optional ``CCXT_PASSWORD`` and ``CCXT_BASE_URL`` (every
  API section pointed there, after the sandbox switch).
* ``ibkr``: ``IB_HOST`` [127.0.0.1], ``IB_PORT`` [7497], ``IB_CLIENT_ID`` [1].

Why one module: the pipeline's venues and the command line's used to be built in two places
(a Dagster resource and an environment helper) that could drift apart; the mode of a venue is
now one decision here, seen by both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from allocator.errors import ConfigError
from allocator.execution.instruments import InstrumentTable
from allocator.execution.orders import Broker, Venue
from allocator.settings import Settings
from resources.brokers.common import TradingMode
from resources.brokers.paper.client import (
    MemoryPaperState,
    PaperBroker,
    PaperBrokerConfig,
    PaperState,
)

__all__ = [
    "MODE_VARIABLES",
    "VENUES",
    "VenueEntry",
    "VenueMode",
    "build_venue",
    "operator_venue",
    "pipeline_venues",
    "venue_mode",
]

VenueMode = Literal["sim", "paper", "live"]
VENUE_MODES: tuple[VenueMode, ...] = ("sim", "paper", "live")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(name, "environment variable is not set")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(name, f"must lie in [{lo}, {hi}], got {value}")
    return value


def _alpaca(
    env: Mapping[str, str], settings: Settings, mode: TradingMode, timeout_s: float
) -> Broker:
    from resources.brokers.alpaca.client import AlpacaBroker

    return AlpacaBroker(
        api_key=_required(env, "ALPACA_API_KEY"),
        secret_key=_required(env, "ALPACA_SECRET_KEY"),
        base_url=env.get("ALPACA_BASE_URL") or None,
        mode=mode,
        timeout_s=timeout_s,
    )


def _ccxt(
    env: Mapping[str, str], settings: Settings, mode: TradingMode, timeout_s: float
) -> Broker:
    from resources.brokers.ccxt.client import CcxtBroker

    return CcxtBroker(
        exchange=env.get("CCXT_EXCHANGE") or settings.config.routing.crypto_exchange,
        api_key=_required(env, "CCXT_API_KEY"),
        secret=_required(env, "CCXT_SECRET"),
        password=env.get("CCXT_PASSWORD") or None,
        base_url=env.get("CCXT_BASE_URL") or None,
        mode=mode,
        timeout_s=timeout_s,
    )


def _ibkr(
    env: Mapping[str, str], settings: Settings, mode: TradingMode, timeout_s: float
) -> Broker:
    from resources.brokers.ibkr.client import IbkrBroker

    return IbkrBroker(
        host=env.get("IB_HOST") or "127.0.0.1",
        port=_int(env, "IB_PORT", 7497, 1, 65_535),
        client_id=_int(env, "IB_CLIENT_ID", 1, 0, 2**31 - 1),
        mode=mode,
        timeout_s=timeout_s,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class VenueEntry:
    """One venue of the registry: the variable of its mode and the builder of its real
    adapter (``build(env, settings, mode, timeout_s)``; the client library is imported only
    when a venue is built)."""

    venue: Venue
    mode_variable: str
    build: Callable[[Mapping[str, str], Settings, TradingMode, float], Broker]
    credentials: tuple[str, ...] = ()  # the variables its real adapter requires (names only)


VENUES: Mapping[Venue, VenueEntry] = {
    Venue.ALPACA: VenueEntry(
        venue=Venue.ALPACA,
        mode_variable="ALPACA_MODE",
        build=_alpaca,
        credentials=("ALPACA_API_KEY", "ALPACA_SECRET_KEY"),
    ),
    Venue.CCXT: VenueEntry(
        venue=Venue.CCXT,
        mode_variable="CCXT_MODE",
        build=_ccxt,
        credentials=("CCXT_API_KEY", "CCXT_SECRET"),
    ),
    Venue.IBKR: VenueEntry(venue=Venue.IBKR, mode_variable="IB_MODE", build=_ibkr),
}
MODE_VARIABLES: Mapping[Venue, str] = {v: e.mode_variable for v, e in VENUES.items()}


def venue_mode(venue: Venue | str, env: Mapping[str, str] | None = None) -> VenueMode:
    """``<VENUE>_MODE`` of ``venue``: ``sim`` (the default, also when empty), ``paper`` or
    ``live``; anything else is a :class:`ConfigError` naming the variable."""
    env = os.environ if env is None else env
    name = MODE_VARIABLES[Venue(venue)]
    mode = (env.get(name, "") or "sim").strip().lower()
    if mode == "sim":
        return "sim"
    if mode == "paper":
        return "paper"
    if mode == "live":
        return "live"
    raise ConfigError(name, f"must be 'sim', 'paper' or 'live', got {mode!r}")


def _sim_state(ledger: Any) -> PaperState:
    if ledger is None:
        return MemoryPaperState()
    from resources.ledger import LedgerPaperState

    return LedgerPaperState(ledger)


def build_venue(
    venue: Venue | str,
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    instruments: InstrumentTable | None = None,
    sim_state: PaperState | None = None,
    paper: PaperBrokerConfig | None = None,
    timeout_s: float = 10.0,
) -> Broker:
    """The broker of ``venue`` in its mode (:func:`venue_mode` of ``env``, default
    ``os.environ``): ``sim`` the simulated venue over ``sim_state`` (in memory when none),
    configured by ``paper``; ``paper``/``live`` the real adapter, its mode checks included."""
    env = os.environ if env is None else env
    entry = VENUES[Venue(venue)]
    mode = venue_mode(entry.venue, env)
    if mode == "sim":
        table = instruments
        if table is None:
            from allocator.execution.instruments import DEFAULT_INSTRUMENTS, load_instruments

            table = load_instruments(settings.instruments) if settings.instruments else None
            table = DEFAULT_INSTRUMENTS if table is None else table
        return PaperBroker(
            venue=entry.venue,
            instruments=table,
            config=paper or PaperBrokerConfig(),
            state=MemoryPaperState() if sim_state is None else sim_state,
        )
    return entry.build(env, settings, mode, timeout_s)


def operator_venue(
    venue: Venue | str,
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
    ledger: Any = None,
) -> Broker:
    """The broker of ``venue`` for the operator commands, the pipeline's own sink: the real
    adapter in ``paper``/``live`` mode, configured from ``env`` (default ``os.environ``) and
    ``settings``; in ``sim`` mode the simulated venue whose orders are in ``ledger`` (a
    ``resources.ledger.Ledger``; without one, the settings' ledger is opened and closed with
    the broker's ``close``). A missing credential or a bad mode is a :class:`ConfigError`
    naming the variable."""
    env = os.environ if env is None else env
    if venue_mode(venue, env) != "sim":
        return build_venue(venue, settings, env=env, timeout_s=timeout_s)
    owned = None
    if ledger is None:
        from resources.ledger import Ledger

        ledger = owned = Ledger(settings.ledger_url)
    broker = build_venue(venue, settings, env=env, sim_state=_sim_state(ledger))
    if owned is not None:
        broker.close = owned.close  # type: ignore[attr-defined]
    return broker


def pipeline_venues(
    instruments: InstrumentTable,
    *,
    ledger: Any = None,
    paper: PaperBrokerConfig | None = None,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> dict[Venue, Broker]:
    """What the pipeline trades at each venue, by the venue's mode (see the module doc): the
    simulated venue in ``sim`` mode (the default; configured by ``paper``, its orders kept in
    ``ledger``, a ``resources.ledger.Ledger``, so that a re-executed run finds them, or in
    memory), the real adapter in ``paper``/``live`` mode, built from ``env`` (default
    ``os.environ``) and ``settings`` (the default :class:`Settings` when none: pass the run's
    record, the ccxt exchange comes from its routing)."""
    env = os.environ if env is None else env
    record = Settings() if settings is None else settings
    state = _sim_state(ledger)
    return {
        v: build_venue(
            v,
            record,
            env=env,
            instruments=instruments,
            sim_state=state,
            paper=paper,
            timeout_s=timeout_s,
        )
        for v in Venue
    }
