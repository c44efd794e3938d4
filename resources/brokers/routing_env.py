"""Build a real venue adapter from environment variables (operator commands, smoke tests).

``alpaca``: ``ALPACA_API_KEY``, ``ALPACA_SECRET_KEY``, optional ``ALPACA_BASE_URL``.
``ccxt``: ``CCXT_EXCHANGE`` (default: the routing config's exchange), ``CCXT_API_KEY``,
``CCXT_SECRET``, optional ``CCXT_PASSWORD`` and ``CCXT_BASE_URL`` (every API section pointed
there, after the sandbox switch; it overrides the per-symbol exchange map).
``ibkr``: ``IB_HOST`` [127.0.0.1], ``IB_PORT`` [7497], ``IB_CLIENT_ID`` [1].
Each venue's mode is ``<VENUE>_MODE`` (``ALPACA_MODE``, ``CCXT_MODE``, ``IB_MODE``): ``paper``
unless set to ``live``. Values are read here and passed on; they are never printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from allocator.config import RoutingConfig
from allocator.errors import ConfigError
from allocator.execution.orders import Broker, Venue

__all__ = ["MODE_VARIABLES", "broker_from_env"]

MODE_VARIABLES: Mapping[Venue, str] = {
    Venue.ALPACA: "ALPACA_MODE",
    Venue.CCXT: "CCXT_MODE",
    Venue.IBKR: "IB_MODE",
}


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(name, "environment variable is not set")
    return value


def _mode(env: Mapping[str, str], venue: Venue) -> Any:
    name = MODE_VARIABLES[venue]
    mode = env.get(name, "paper") or "paper"
    if mode not in ("paper", "live"):
        raise ConfigError(name, f"must be 'paper' or 'live', got {mode!r}")
    return mode


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None


def broker_from_env(
    venue: Venue | str,
    *,
    timeout_s: float = 10.0,
    env: Mapping[str, str] | None = None,
    routing: RoutingConfig | None = None,
) -> Broker:
    """The real adapter for ``venue`` (never the paper broker), configured from ``env``."""
    env = os.environ if env is None else env
    venue = Venue(venue)
    mode = _mode(env, venue)
    if venue is Venue.ALPACA:
        from resources.brokers.alpaca.client import AlpacaBroker

        return AlpacaBroker(
            api_key=_required(env, "ALPACA_API_KEY"),
            secret_key=_required(env, "ALPACA_SECRET_KEY"),
            base_url=env.get("ALPACA_BASE_URL") or None,
            mode=mode,
            timeout_s=timeout_s,
        )
    if venue is Venue.CCXT:
        from resources.brokers.ccxt.client import CcxtBroker

        exchange = env.get("CCXT_EXCHANGE") or (routing or RoutingConfig()).crypto_exchange
        return CcxtBroker(
            exchange=exchange,
            api_key=_required(env, "CCXT_API_KEY"),
            secret=_required(env, "CCXT_SECRET"),
            password=env.get("CCXT_PASSWORD") or None,
            base_url=env.get("CCXT_BASE_URL") or None,
            mode=mode,
            timeout_s=timeout_s,
        )
    from resources.brokers.ibkr.client import IbkrBroker

    return IbkrBroker(
        host=env.get("IB_HOST") or "127.0.0.1",
        port=_int(env, "IB_PORT", 7497),
        client_id=_int(env, "IB_CLIENT_ID", 1),
        mode=mode,
        timeout_s=timeout_s,
    )
