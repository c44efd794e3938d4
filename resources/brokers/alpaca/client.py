"""The Alpaca adapter: alpaca-py's ``TradingClient`` behind our :class:`Broker` interface.

Hardening over the library's defaults (BROKERS.md): every request has a timeout (the library
sends none); the library's own retry loop is limited to 429 (never 504: a 504 may follow an
accepted order and is resolved by a lookup instead) with a short wait; calls are spaced to
Alpaca's 200 requests per minute.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.models import Order
from alpaca.trading.requests import GetOrdersRequest

from allocator.errors import BrokerError
from allocator.execution.orders import BrokerOrder, OrderRequest, Venue
from resources.brokers.alpaca.errors import NOT_FOUND, classify, error_code
from resources.brokers.alpaca.mapping import to_broker_order, to_fills, to_market_order
from resources.brokers.common import InstrumentRules, RateLimiter, TradingMode, check_mode
from resources.brokers.common import to_decimal as _dec

__all__ = ["LIVE_URL", "PAPER_URL", "AlpacaBroker"]

LIVE_URL = "https://api.alpaca.markets"
PAPER_URL = "https://paper-api.alpaca.markets"
_ACTIVITY_PAGES = 10


class _TimeoutSession(requests.Session):
    """A session that puts ``timeout`` on every request that does not set one."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


class AlpacaBroker:
    """Alpaca trading API as a :class:`~allocator.execution.orders.Broker` (equities and ETFs)."""

    name = Venue.ALPACA.value
    server_time_resolution_s = 0.0  # the clock's timestamp carries (at least) microseconds

    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        mode: TradingMode = "paper",
        base_url: str | None = None,
        timeout_s: float = 10.0,
        requests_per_minute: int = 200,
        retry_429_attempts: int = 1,
        retry_wait_s: int = 1,
    ) -> None:
        if not api_key or not secret_key:
            raise BrokerError("alpaca: api key and secret key are required (ALPACA_API_KEY, ...)")
        if timeout_s <= 0:
            raise BrokerError(f"alpaca: timeout_s must be > 0, got {timeout_s}")
        url = (base_url or (LIVE_URL if mode == "live" else PAPER_URL)).rstrip("/")
        check_mode("alpaca", mode, is_live_endpoint=url == LIVE_URL, endpoint=url)
        self.mode: TradingMode = mode
        self.base_url = url
        self._client = TradingClient(api_key, secret_key, paper=mode != "live", url_override=url)
        # alpaca-py 0.44 sends requests without a timeout and retries 429 and 504, POST included.
        for attr in ("_session", "_retry", "_retry_wait", "_retry_codes"):
            if not hasattr(self._client, attr):
                raise BrokerError(f"alpaca-py changed: TradingClient has no {attr}; re-check it")
        self._client._session = _TimeoutSession(timeout_s)
        self._client._retry = max(0, retry_429_attempts)
        self._client._retry_wait = retry_wait_s
        self._client._retry_codes = [429]
        self._limiter = RateLimiter(requests_per_minute)
        self._rules: dict[str, InstrumentRules] = {}
        self._lock = threading.Lock()

    def _call(self, action: str, fn: Any, *args: Any) -> Any:
        self._limiter.acquire()
        try:
            return fn(*args)
        except (APIError, requests.RequestException) as exc:
            raise classify(exc, action) from exc

    # -- instrument rules ---------------------------------------------------------------------
    def rules(self, symbol: str) -> InstrumentRules:
        """Lot and minimum rules from Alpaca's asset record (fractionable or whole shares)."""
        with self._lock:
            cached = self._rules.get(symbol)
        if cached is not None:
            return cached
        asset = self._call(f"asset {symbol}", self._client.get_asset, symbol)
        if not asset.tradable:
            raise BrokerError(f"alpaca: {symbol} is not tradable")
        step = (
            _dec(asset.min_trade_increment, f"{symbol} min_trade_increment")
            if asset.fractionable and asset.min_trade_increment
            else Decimal("0.000000001")
            if asset.fractionable
            else Decimal(1)
        )
        rules = InstrumentRules(
            symbol=symbol,
            lot_step=step,
            min_qty=_dec(asset.min_order_size, "min_order_size") if asset.min_order_size else step,
            tick=_dec(asset.price_increment, "price_increment") if asset.price_increment else None,
            min_notional=Decimal(1) if asset.fractionable else Decimal(0),
        )
        with self._lock:
            self._rules[symbol] = rules
        return rules

    # -- Broker ------------------------------------------------------------------------------
    def submit(self, request: OrderRequest) -> BrokerOrder:
        qty = self.rules(request.symbol).apply(request)
        order = self._call("submit", self._client.submit_order, to_market_order(request, qty))
        return to_broker_order(order, self._fills(order))

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        self._limiter.acquire()
        try:
            order = self._client.get_order_by_client_id(client_order_id)
        except APIError as exc:
            if exc.status_code == 404 and error_code(exc) in (NOT_FOUND, None):
                return None
            raise classify(exc, f"lookup {client_order_id}") from exc
        except requests.RequestException as exc:
            raise classify(exc, f"lookup {client_order_id}") from exc
        if order.symbol not in (None, symbol):
            raise BrokerError(
                f"alpaca: client order id {client_order_id} belongs to {order.symbol}, not {symbol}"
            )
        return to_broker_order(order, self._fills(order))

    def open_orders(self) -> Sequence[BrokerOrder]:
        query = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
        orders = self._call("open orders", self._client.get_orders, query)
        return [to_broker_order(o) for o in orders]

    def positions(self) -> Mapping[str, Decimal]:
        result: dict[str, Decimal] = {}
        for pos in self._call("positions", self._client.get_all_positions):
            qty = _dec(pos.qty, f"alpaca position {pos.symbol}")
            side = str(getattr(pos.side, "value", pos.side))
            result[pos.symbol] = -abs(qty) if side == "short" else qty
        return result

    def cancel(self, symbol: str, client_order_id: str) -> None:
        order = self.lookup(symbol, client_order_id)
        if order is None:
            raise BrokerError(
                f"alpaca: cannot cancel {client_order_id}: the venue does not know it"
            )
        self._call(
            f"cancel {client_order_id}", self._client.cancel_order_by_id, order.venue_order_id
        )

    def account(self) -> Mapping[str, Decimal]:
        """Cash, equity and buying power in USD."""
        acct = self._call("account", self._client.get_account)
        return {
            key: _dec(getattr(acct, key), f"alpaca account {key}")
            for key in ("cash", "equity", "buying_power")
            if getattr(acct, key, None) is not None
        }

    def server_time(self) -> datetime:
        """The venue's clock (``GET /v2/clock``), timezone-aware UTC (``allocator doctor``)."""
        clock = self._call("clock", self._client.get_clock)
        stamp: datetime = clock.timestamp
        if stamp.tzinfo is None:
            raise BrokerError(f"alpaca: the clock's timestamp has no time zone: {stamp}")
        return stamp.astimezone(UTC)

    def close(self) -> None:
        self._client._session.close()

    # -- fills -------------------------------------------------------------------------------
    def _fills(self, order: Order) -> tuple[Any, ...]:
        if not order.filled_qty or _dec(order.filled_qty, "filled_qty") == 0:
            return ()
        after = (order.submitted_at - timedelta(minutes=1)).isoformat()
        params: dict[str, Any] = {"after": after, "direction": "asc", "page_size": 100}
        activities: list[Mapping[str, Any]] = []
        for _ in range(_ACTIVITY_PAGES):
            page = self._call("fills", self._client.get, "/account/activities/FILL", params)
            if not page:
                break
            activities.extend(page)
            if len(page) < params["page_size"]:
                break
            params = {**params, "page_token": page[-1]["id"]}
        return to_fills(order, activities)
