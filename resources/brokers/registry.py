"""The broker registry: every venue the pipeline or the command line trades is built here.

One table (:data:`VENUES`: each venue's mode variable and how its real adapter is built from
the environment) and two lanes, both called with the same
:class:`~allocator.settings.Settings` record and environment:

* :func:`pipeline_venues` builds what ``bar_job`` trades and checks (``assets/execution.py``,
  ``assets/checks.py``), and what the demo and ``allocator net`` trade: the built-in
  simulated venue (:mod:`resources.brokers.paper`) for every venue, its orders kept in the
  ledger (in memory without one). For now the pipeline trades the simulated venue for every
  venue whatever ``*_MODE`` says. Real adapters will be turned on in the pipeline by a later
  issue, once the bar path is safe for them: the fill deadline and the cancel of SPEC §9 are
  not yet part of ``bar_job``, and a real venue's order may rest open across bars.
* :func:`operator_venue` builds the real adapter of one venue for the operator commands
  (``allocator broker submit|lookup|reconcile``) and the live smoke tests; never the paper
  broker. Its mode is ``<VENUE>_MODE`` (``ALPACA_MODE``, ``CCXT_MODE``, ``IB_MODE``): ``paper``
  unless set to ``live``. The adapter refuses ``live`` unless it points at the venue's live URL,
  and refuses ``paper`` on the live URL (:func:`resources.brokers.common.check_mode`).

Connection settings, read from the environment when the adapter is built and passed on, never
printed or stored (SPEC §8 modes, README "Operating a venue"):

* ``alpaca``: ``ALPACA_API_KEY``, ``ALPACA_SECRET_KEY``, optional ``ALPACA_BASE_URL``.
* ``ccxt``: ``CCXT_EXCHANGE`` (default: the configuration's ``routing.crypto_exchange``),
  ``CCXT_API_KEY``, ``CCXT_SECRET``, optional ``CCXT_PASSWORD`` and ``CCXT_BASE_URL`` (every
  API section pointed there, after the sandbox switch).
* ``ibkr``: ``IB_HOST`` [127.0.0.1], ``IB_PORT`` [7497], ``IB_CLIENT_ID`` [1].

Why one module: the pipeline's venues and the command line's used to be built in two places
(a Dagster resource and an environment helper) that could drift apart; turning real adapters
on in the pipeline is now one change here, seen by both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
    "operator_venue",
    "pipeline_venues",
    "venue_mode",
]


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


VENUES: Mapping[Venue, VenueEntry] = {
    Venue.ALPACA: VenueEntry(venue=Venue.ALPACA, mode_variable="ALPACA_MODE", build=_alpaca),
    Venue.CCXT: VenueEntry(venue=Venue.CCXT, mode_variable="CCXT_MODE", build=_ccxt),
    Venue.IBKR: VenueEntry(venue=Venue.IBKR, mode_variable="IB_MODE", build=_ibkr),
}
MODE_VARIABLES: Mapping[Venue, str] = {v: e.mode_variable for v, e in VENUES.items()}


def venue_mode(venue: Venue | str, env: Mapping[str, str] | None = None) -> TradingMode:
    """``<VENUE>_MODE`` of ``venue``: ``paper`` (the default, also when empty) or ``live``."""
    env = os.environ if env is None else env
    name = MODE_VARIABLES[Venue(venue)]
    mode = env.get(name, "paper") or "paper"
    if mode == "paper":
        return "paper"
    if mode == "live":
        return "live"
    raise ConfigError(name, f"must be 'paper' or 'live', got {mode!r}")


def operator_venue(
    venue: Venue | str,
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> Broker:
    """The real adapter of ``venue`` (never the paper broker), configured from ``env``
    (default ``os.environ``) and ``settings``; a missing credential or a bad mode is a
    :class:`ConfigError` naming the variable."""
    env = os.environ if env is None else env
    entry = VENUES[Venue(venue)]
    return entry.build(env, settings, venue_mode(entry.venue, env), timeout_s)


def pipeline_venues(
    instruments: InstrumentTable,
    *,
    ledger: Any = None,
    paper: PaperBrokerConfig | None = None,
) -> dict[Venue, Broker]:
    """What the pipeline trades at each venue: today the built-in simulated venue for every
    venue (see the module doc), configured by ``paper``, its orders kept in ``ledger`` (a
    ``resources.ledger.Ledger``, so that a re-executed run finds them) or in memory."""
    state: PaperState
    if ledger is not None:
        from resources.ledger import LedgerPaperState

        state = LedgerPaperState(ledger)
    else:
        state = MemoryPaperState()
    config = paper or PaperBrokerConfig()
    return {
        v: PaperBroker(venue=v, instruments=instruments, config=config, state=state) for v in Venue
    }
