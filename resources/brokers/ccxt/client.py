"""The ccxt adapter: one exchange (Binance, Bybit, OKX, ...) behind our :class:`Broker`.

Spot only (``BTC/USDT`` is spot). Every request has ccxt's ``timeout``; ccxt's own rate
limiter is on (``enable_rate_limit``). The client order id goes to the venue unchanged
(``clientOrderId`` → Binance ``newClientOrderId``, Bybit ``orderLinkId``, OKX ``clOrdId``).
Lookups follow each venue's rules (BROKERS.md): Binance by ``origClientOrderId``; Bybit in
the open then the closed orders by ``orderLinkId``; others by ``clientOrderId``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt

from allocator.errors import BrokerError, ConfigError
from allocator.execution.orders import BrokerOrder, OrderRequest, Venue
from resources.brokers.ccxt.errors import classify
from resources.brokers.ccxt.mapping import rules_from_market, to_broker_order, to_fills
from resources.brokers.common import (
    InstrumentRules,
    TradingMode,
    check_mode,
    decimal_text,
    to_decimal,
)

__all__ = ["EXCHANGE_OPTIONS", "CcxtBroker", "point_at"]

# Options that keep load_markets to the spot markets and off account endpoints.
EXCHANGE_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "binance": {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "warnOnFetchOpenOrdersWithoutSymbol": False,
    },
    "bybit": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
    "okx": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
}


def _rebase(url: str, base: str) -> str:
    path = urlsplit(url).path
    return base.rstrip("/") + path


def point_at(exchange: ccxt.Exchange, base_url: str) -> None:
    """Point every API section at ``base_url``, keeping each section's path."""
    exchange.hostname = urlsplit(base_url).netloc
    api = exchange.urls["api"]
    exchange.urls["api"] = (
        {k: _rebase(exchange.implode_hostname(v), base_url) for k, v in api.items()}
        if isinstance(api, dict)
        else _rebase(exchange.implode_hostname(api), base_url)
    )


def _live_hosts(exchange_id: str) -> set[str]:
    api = getattr(ccxt, exchange_id)().urls["api"]
    urls = api.values() if isinstance(api, dict) else [api]
    probe = getattr(ccxt, exchange_id)()
    return {urlsplit(probe.implode_hostname(u)).netloc for u in urls if isinstance(u, str)}


def _build(
    exchange: str, config: Mapping[str, Any], mode: TradingMode, base_url: str | None
) -> ccxt.Exchange:
    """A ccxt client of ``exchange``: the sandbox in paper mode, or pointed at ``base_url``."""
    client: ccxt.Exchange = getattr(ccxt, exchange)(
        {**config, "options": dict(config.get("options") or {})}
    )
    if mode == "paper" and base_url is None:
        if not client.urls.get("test"):
            raise ConfigError(
                "ccxt.mode", f"{exchange} has no sandbox in ccxt: give a paper base_url"
            )
        client.set_sandbox_mode(True)
    if base_url:
        point_at(client, base_url)
    return client


class CcxtBroker:
    """A ccxt exchange as a :class:`~allocator.execution.orders.Broker` (crypto spot)."""

    server_time_resolution_s = 0.001  # ccxt's fetch_time answers milliseconds

    def __init__(
        self,
        *,
        exchange: str,
        api_key: str,
        secret: str,
        mode: TradingMode = "paper",
        base_url: str | None = None,
        timeout_s: float = 10.0,
        enable_rate_limit: bool = True,
        quote_currency: str = "USDT",
        password: str | None = None,
    ) -> None:
        if exchange not in ccxt.exchanges:
            raise ConfigError("ccxt.exchange", f"unknown ccxt exchange {exchange!r}")
        if not api_key or not secret:
            raise BrokerError(f"{exchange}: api key and secret are required (CCXT_API_KEY, ...)")
        if timeout_s <= 0:
            raise BrokerError(f"{exchange}: timeout_s must be > 0, got {timeout_s}")
        config: dict[str, Any] = {
            "apiKey": api_key,
            "secret": secret,
            "timeout": int(timeout_s * 1000),
            "enableRateLimit": enable_rate_limit,
            "options": dict(EXCHANGE_OPTIONS.get(exchange, {"defaultType": "spot"})),
        }
        if password:
            config["password"] = password
        client = _build(exchange, config, mode, base_url)
        endpoint = base_url or "live API" if mode == "live" else base_url or "sandbox"
        is_live = urlsplit(base_url).netloc in _live_hosts(exchange) if base_url else mode == "live"
        check_mode(f"ccxt.{exchange}", mode, is_live_endpoint=is_live, endpoint=endpoint)
        self.exchange_id = exchange
        self.mode: TradingMode = mode
        self.quote_currency = quote_currency
        self.client = client  # loads the markets; one of the pool's clients
        self._build = lambda: _build(exchange, config, mode, base_url)
        self._pool_lock = threading.Lock()
        self._idle: list[ccxt.Exchange] = [client]
        self._clients: list[ccxt.Exchange] = [client]
        self._markets_lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{Venue.CCXT.value}:{self.exchange_id}"

    @contextlib.contextmanager
    def _checkout(self) -> Iterator[ccxt.Exchange]:
        """A ccxt client for one call, used by no other thread meanwhile.

        ccxt's sync clients are not thread-safe; a bar's orders go out concurrently
        (``execute_orders``), so each concurrent call borrows a client of its own from a pool
        (built on demand from the same settings, the markets shared) and gives it back.
        """
        with self._pool_lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            self._load_markets()
            client = self._build()
            client.set_markets_from_exchange(self.client)
            with self._pool_lock:
                self._clients.append(client)
        try:
            yield client
        finally:
            with self._pool_lock:
                self._idle.append(client)

    def _load_markets(self) -> None:
        with self._markets_lock:
            if not self.client.markets:
                try:
                    self.client.load_markets()
                except ccxt.BaseError as exc:
                    raise classify(exc, self.exchange_id, "load markets") from exc

    def _call(self, action: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(client, *args)`` on a borrowed client; ccxt errors classified."""
        with self._checkout() as client:
            try:
                return fn(client, *args)
            except ccxt.BaseError as exc:
                raise classify(exc, self.exchange_id, action) from exc

    def market(self, symbol: str) -> Mapping[str, Any]:
        self._load_markets()
        if symbol not in self.client.markets:
            raise BrokerError(f"{self.exchange_id}: unknown symbol {symbol!r} (spot markets only)")
        market: Mapping[str, Any] = self.client.markets[symbol]
        if not market.get("spot"):
            raise BrokerError(f"{self.exchange_id}: {symbol} is not a spot market")
        return market

    def rules(self, symbol: str) -> InstrumentRules:
        return rules_from_market(self.market(symbol), self.client.precisionMode)

    # -- Broker ------------------------------------------------------------------------------
    def submit(self, request: OrderRequest) -> BrokerOrder:
        market = self.market(request.symbol)
        qty = self.rules(request.symbol).apply(request)
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if self.exchange_id == "bybit":
            params["marketUnit"] = "baseCoin"  # qty in base units on both sides
        # Exact decimal text: amount_to_precision of the rounded qty is a string and ccxt sends
        # a string amount as it is (a float would go through repr).
        amount = self.client.amount_to_precision(request.symbol, decimal_text(qty))
        created = self._call(
            "submit",
            lambda ex, *a: ex.create_order(*a),
            request.symbol,
            "market",
            request.side.value,
            amount,
            None,
            params,
        )
        # The order is at the venue now; read it back whole (Bybit answers ids only).
        found = self.lookup(request.symbol, request.client_order_id)
        if found is not None:
            return found
        created.setdefault("clientOrderId", request.client_order_id)
        created.setdefault("side", request.side.value)
        created.setdefault("amount", amount)
        return to_broker_order({**created, "status": created.get("status") or "open"}, market)

    def _find(self, client: ccxt.Exchange, symbol: str, cid: str) -> dict[str, Any] | None:
        try:
            if self.exchange_id == "binance":
                order: dict[str, Any] = client.fetch_order(None, symbol, {"origClientOrderId": cid})
                return order
            if self.exchange_id == "bybit":
                for fetch in (client.fetch_open_orders, client.fetch_closed_orders):
                    for candidate in fetch(symbol, None, None, {"orderLinkId": cid}):
                        if candidate.get("clientOrderId") == cid:
                            return dict(candidate)
                return None
            order = client.fetch_order(None, symbol, {"clientOrderId": cid})
            return order
        except ccxt.OrderNotFound:
            return None

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        market = self.market(symbol)
        order = self._call(f"lookup {client_order_id}", self._find, symbol, client_order_id)
        if order is None:
            return None
        order.setdefault("clientOrderId", client_order_id)
        fills: tuple[Any, ...] = ()
        if to_decimal(order.get("filled") or 0, "filled") > 0:
            trades = self._call(
                f"fills of {client_order_id}",
                lambda ex, *a: ex.fetch_my_trades(*a),
                symbol,
                None,
                None,
                {"orderId": order["id"]},
            )
            mine = [t for t in trades if str(t.get("order")) == str(order["id"])]
            fills = to_fills(client_order_id, market, mine)
        return to_broker_order(order, market, fills)

    def open_orders(self) -> Sequence[BrokerOrder]:
        self._load_markets()
        orders = self._call("open orders", lambda ex: ex.fetch_open_orders())
        return [to_broker_order(o, self.client.markets[o["symbol"]]) for o in orders]

    def positions(self) -> Mapping[str, Decimal]:
        """Spot holdings as positions: each currency's total balance under ``CCY/QUOTE``."""
        self._load_markets()
        result: dict[str, Decimal] = {}
        for currency, total in self.account().items():
            symbol = f"{currency}/{self.quote_currency}"
            if currency != self.quote_currency and total != 0 and symbol in self.client.markets:
                result[symbol] = total
        return result

    def cancel(self, symbol: str, client_order_id: str) -> None:
        order = self.lookup(symbol, client_order_id)
        if order is None:
            raise BrokerError(
                f"{self.exchange_id}: cannot cancel {client_order_id}: the venue does not know it"
            )
        self._call(
            f"cancel {client_order_id}",
            lambda ex, *a: ex.cancel_order(*a),
            order.venue_order_id,
            symbol,
        )

    def account(self) -> Mapping[str, Decimal]:
        """Total balance per currency (free + used)."""
        balance = self._call("balance", lambda ex: ex.fetch_balance())
        totals = balance.get("total") or {}
        return {
            ccy: to_decimal(amount, f"{self.exchange_id} balance {ccy}")
            for ccy, amount in totals.items()
            if amount is not None
        }

    def server_time(self) -> datetime:
        """The exchange's clock (ccxt ``fetch_time``), timezone-aware UTC (``allocator
        doctor``)."""
        millis = self._call("server time", lambda ex: ex.fetch_time())
        if not isinstance(millis, int):
            raise BrokerError(f"{self.exchange_id}: server time is not a number: {millis!r}")
        return datetime.fromtimestamp(millis / 1000, UTC)

    def close(self) -> None:
        with self._pool_lock:
            clients = list(self._clients)
        for client in clients:
            session = getattr(client, "session", None)
            if session is not None:
                session.close()
