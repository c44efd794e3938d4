"""A fake Binance spot REST API (the ``/api/v3`` surface ccxt's ``binance`` uses).

Every signed request is checked like Binance does: ``X-MBX-APIKEY`` must be the key and the
``signature`` parameter must be the HMAC-SHA256 (hex) of the query string or form body that
precedes it, so ccxt's own ``sign()`` is exercised; otherwise ``-1022``/``-2015``.

Binance's dedup rule is reproduced: a ``newClientOrderId`` is refused (``-2010`` "Duplicate
order sent.") only while an order with that id is open; after a fill the same id is accepted
and fills again. Market orders fill at once at the symbol's price; a ``partial`` fault fills
half and expires the rest (a market order never rests), ``rest`` leaves it ``NEW``, ``reject``
answers "insufficient balance".
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._book import HeldOrder
from ._http import FakeRestVenue, Request

__all__ = ["FakeBinance"]

OPEN = {"NEW", "PARTIALLY_FILLED"}


@dataclass
class _Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    status: str
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    time_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": "0.00000000",
            "origQty": str(self.qty),
            "executedQty": str(self.executed),
            "cummulativeQuoteQty": str(self.quote),
            "status": self.status,
            "timeInForce": "GTC",
            "type": "MARKET",
            "side": self.side,
            "stopPrice": "0.00000000",
            "time": self.time_ms,
            "updateTime": self.time_ms,
            "isWorking": True,
            "workingTime": self.time_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }


class FakeBinance(FakeRestVenue):
    FEE_RATE = Decimal("0.001")

    def __init__(self, *, key: str = "binance-key", secret: str = "binance-secret") -> None:
        super().__init__()
        self.key = key
        self.secret = secret
        self.markets: dict[str, dict[str, str]] = {
            "BTCUSDT": {
                "base": "BTC",
                "quote": "USDT",
                "tick": "0.01",
                "step": "0.00001",
                "min_qty": "0.00001",
                "min_notional": "5",
            },
            "ETHUSDT": {
                "base": "ETH",
                "quote": "USDT",
                "tick": "0.01",
                "step": "0.0001",
                "min_qty": "0.0001",
                "min_notional": "5",
            },
        }
        self.prices: dict[str, Decimal] = {"BTCUSDT": Decimal("60000"), "ETHUSDT": Decimal("3000")}
        self.balances: dict[str, Decimal] = {"USDT": Decimal("1000000")}
        # Where the commission is taken: "quote" (always USDT), "received" (Binance's own rule:
        # the asset received, the base coin on a buy) or "BNB" (BNB fee discount, BNB held).
        self.fee_asset = "quote"
        self.bnb_price = Decimal("500")
        self.orders: dict[int, _Order] = {}
        self.trades: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.clock_offset_s = 0.0  # the venue's clock minus the true time (a skewed venue)
        self._ids = itertools.count(1000)

    def orders_for(self, client_order_id: str) -> list[_Order]:
        with self.lock:
            return [o for o in self.orders.values() if o.client_order_id == client_order_id]

    def order_book(self) -> list[HeldOrder]:
        """Every order the venue accepted, with the ids of its trades."""
        with self.lock:
            return [
                HeldOrder(
                    client_order_id=o.client_order_id,
                    symbol=o.symbol,
                    side=o.side.lower(),
                    qty=o.qty,
                    filled=o.executed,
                    status=o.status,
                    fill_ids=tuple(str(t["id"]) for t in self.trades if t["orderId"] == o.order_id),
                )
                for o in self.orders.values()
            ]

    def holdings(self) -> dict[str, Decimal]:
        """Each market's non-zero base-coin balance, by market (``BTCUSDT``)."""
        with self.lock:
            held = {
                m: self.balances.get(info["base"], Decimal(0)) for m, info in self.markets.items()
            }
        return {m: q for m, q in held.items() if q != 0}

    def is_submit(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/api/v3/order"

    # -- signing -----------------------------------------------------------------------------
    def _verify(self, request: Request) -> tuple[int, Any] | None:
        if request.headers.get("x-mbx-apikey") != self.key:
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        raw = request.raw_body if request.method == "POST" else request.raw_query
        payload, sep, signature = raw.rpartition("&signature=")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not sep or not hmac.compare_digest(signature, expected):
            self.bad_signatures += 1
            return 400, {"code": -1022, "msg": "Signature for this request is not valid."}
        return None

    # -- routes ------------------------------------------------------------------------------
    def route(self, request: Request) -> tuple[int, Any]:
        path, method = request.path, request.method
        if path == "/api/v3/exchangeInfo":
            return 200, self._exchange_info()
        if path == "/api/v3/time":
            return 200, {"serverTime": int((time.time() + self.clock_offset_s) * 1000)}
        if path == "/api/v3/ticker/price":
            symbol = request.query.get("symbol", "")
            return 200, {"symbol": symbol, "price": str(self.prices[symbol])}
        if path == "/api/v3/ticker/24hr":
            return 200, self._ticker(request.query.get("symbol", ""))
        failure = self._verify(request)
        if failure is not None:
            return failure
        params = request.form if method == "POST" else request.query
        if path == "/api/v3/order" and method == "POST":
            return self._submit(params)
        if path == "/api/v3/order" and method == "GET":
            order = self._find(params)
            if order is None:
                return 400, {"code": -2013, "msg": "Order does not exist."}
            return 200, order.to_json()
        if path == "/api/v3/order" and method == "DELETE":
            order = self._find(params)
            if order is None or order.status not in OPEN:
                return 400, {"code": -2011, "msg": "Unknown order sent."}
            order.status = "CANCELED"
            return 200, {**order.to_json(), "origClientOrderId": order.client_order_id}
        if path == "/api/v3/openOrders" and method == "GET":
            symbol = params.get("symbol")
            return 200, [
                o.to_json()
                for o in self.orders.values()
                if o.status in OPEN and symbol in (None, o.symbol)
            ]
        if path == "/api/v3/myTrades" and method == "GET":
            order_id = params.get("orderId")
            return 200, [
                t
                for t in self.trades
                if t["symbol"] == params.get("symbol")
                and (order_id is None or str(t["orderId"]) == order_id)
            ]
        if path == "/api/v3/account" and method == "GET":
            return 200, {
                "makerCommission": 10,
                "takerCommission": 10,
                "canTrade": True,
                "accountType": "SPOT",
                "balances": [
                    {"asset": a, "free": str(q), "locked": "0.00000000"}
                    for a, q in self.balances.items()
                ],
                "permissions": ["SPOT"],
            }
        return 404, {"code": -1000, "msg": f"fake binance: no route {method} {path}"}

    def _find(self, params: dict[str, str]) -> _Order | None:
        symbol = params.get("symbol")
        cid = params.get("origClientOrderId")
        order_id = params.get("orderId")
        matches = [
            o
            for o in self.orders.values()
            if o.symbol == symbol
            and (cid is None or o.client_order_id == cid)
            and (order_id is None or str(o.order_id) == order_id)
        ]
        # Binance answers the most recent order with that client order id.
        return max(matches, key=lambda o: o.order_id) if matches else None

    def _submit(self, params: dict[str, str]) -> tuple[int, Any]:
        symbol = params.get("symbol", "")
        if symbol not in self.markets:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if params.get("type") != "MARKET" or "quantity" not in params:
            return 400, {"code": -1102, "msg": "fake binance takes MARKET orders by quantity"}
        cid = params.get("newClientOrderId") or f"x-{next(self._ids)}"
        if any(o.status in OPEN for o in self.orders_for(cid)):
            return 400, {"code": -2010, "msg": "Duplicate order sent."}
        market = self.markets[symbol]
        qty = Decimal(params["quantity"])
        if (qty % Decimal(market["step"])) != 0 or qty < Decimal(market["min_qty"]):
            return 400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
        if qty * self.prices[symbol] < Decimal(market["min_notional"]):
            return 400, {"code": -1013, "msg": "Filter failure: NOTIONAL"}
        fault = self.take_order_fault()
        if fault is not None and fault.kind == "reject":
            return 400, {
                "code": -2010,
                "msg": "Account has insufficient balance for requested action.",
            }
        now = int(time.time() * 1000)
        order = _Order(next(self._ids), cid, symbol, params["side"], qty, "NEW", time_ms=now)
        self.orders[order.order_id] = order
        fills: list[dict[str, Any]] = []
        if fault is None:
            fills = self._execute(order, qty)
        elif fault.kind == "partial":
            step = Decimal(market["step"])
            fills = self._execute(order, (qty / 2 / step).to_integral_value() * step)
            order.status = "EXPIRED"
        return 200, {**order.to_json(), "transactTime": now, "fills": fills}

    def _execute(self, order: _Order, qty: Decimal) -> list[dict[str, Any]]:
        price = self.prices[order.symbol]
        market = self.markets[order.symbol]
        fee = qty * price * self.FEE_RATE
        order.executed += qty
        order.quote += qty * price
        order.status = "FILLED" if order.executed == order.qty else "PARTIALLY_FILLED"
        sign = 1 if order.side == "BUY" else -1
        base, quote = market["base"], market["quote"]
        fee_asset = quote
        if self.fee_asset == "received" and order.side == "BUY":
            fee_asset, fee = base, qty * self.FEE_RATE
        elif self.fee_asset == "BNB":
            fee_asset, fee = "BNB", qty * price * self.FEE_RATE / self.bnb_price
        self.balances[base] = self.balances.get(base, Decimal(0)) + sign * qty
        self.balances[quote] = self.balances.get(quote, Decimal(0)) - sign * qty * price
        self.balances[fee_asset] = self.balances.get(fee_asset, Decimal(0)) - fee
        trade_id = next(self._ids)
        self.trades.append(
            {
                "symbol": order.symbol,
                "id": trade_id,
                "orderId": order.order_id,
                "orderListId": -1,
                "price": str(price),
                "qty": str(qty),
                "quoteQty": str(qty * price),
                "commission": str(fee),
                "commissionAsset": fee_asset,
                "time": order.time_ms,
                "isBuyer": order.side == "BUY",
                "isMaker": False,
                "isBestMatch": True,
            }
        )
        return [
            {
                "price": str(price),
                "qty": str(qty),
                "commission": str(fee),
                "commissionAsset": fee_asset,
                "tradeId": trade_id,
            }
        ]

    def fill_open(self, client_order_id: str) -> None:
        with self.lock:
            for order in self.orders_for(client_order_id):
                if order.status in OPEN:
                    self._execute(order, order.qty - order.executed)

    def _exchange_info(self) -> dict[str, Any]:
        symbols = []
        for name, m in self.markets.items():
            symbols.append(
                {
                    "symbol": name,
                    "status": "TRADING",
                    "baseAsset": m["base"],
                    "baseAssetPrecision": 8,
                    "quoteAsset": m["quote"],
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "MARKET"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "permissions": ["SPOT"],
                    "permissionSets": [["SPOT"]],
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": m["tick"],
                            "maxPrice": "1000000.00",
                            "tickSize": m["tick"],
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": m["min_qty"],
                            "maxQty": "9000.00000000",
                            "stepSize": m["step"],
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": m["min_notional"],
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _ticker(self, symbol: str) -> dict[str, Any]:
        price = str(self.prices[symbol])
        now = int(time.time() * 1000)
        return {
            "symbol": symbol,
            "lastPrice": price,
            "bidPrice": price,
            "askPrice": price,
            "openPrice": price,
            "highPrice": price,
            "lowPrice": price,
            "volume": "1",
            "quoteVolume": price,
            "openTime": now - 86_400_000,
            "closeTime": now,
            "count": 1,
        }
