"""A fake Bybit v5 REST API (unified account, spot), as ccxt's ``bybit`` calls it.

Signed requests are checked like Bybit does: ``X-BAPI-SIGN`` must be the HMAC-SHA256 (hex) of
``timestamp + api key + recv window + (JSON body | query string)``, with ``X-BAPI-API-KEY``,
``X-BAPI-TIMESTAMP`` and ``X-BAPI-RECV-WINDOW`` headers; otherwise ``10004``/``10003``.

Bybit's dedup rule: an ``orderLinkId`` is refused in any state (``110072``). ``create``
answers ids only. A ``partial`` fault fills half and cancels the rest
(``PartiallyFilledCanceled``), ``rest`` leaves the order ``New``, ``reject`` answers
``170131`` (insufficient balance). Errors come as HTTP 200 with a non-zero ``retCode``.

Fees: Bybit's spot rule by default (a buy's in the base coin, a sell's in the quote coin);
``fee_asset = "quote"`` takes both in the quote coin. Each execution names its fee coin in
``feeCoin``, which ccxt reads (without it ccxt assumes Bybit's rule whatever was charged).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._book import HeldOrder
from ._http import FakeRestVenue, Request

__all__ = ["FakeBybit"]

OPEN = {"New", "PartiallyFilled"}


def _ok(result: Any) -> tuple[int, Any]:
    return 200, {
        "retCode": 0,
        "retMsg": "OK",
        "result": result,
        "retExtInfo": {},
        "time": int(time.time() * 1000),
    }


def _err(code: int, msg: str) -> tuple[int, Any]:
    return 200, {
        "retCode": code,
        "retMsg": msg,
        "result": {},
        "retExtInfo": {},
        "time": int(time.time() * 1000),
    }


@dataclass
class _Order:
    order_id: str
    link_id: str
    symbol: str
    side: str
    qty: Decimal
    status: str
    executed: Decimal = Decimal(0)
    value: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    time_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        avg = "" if not self.executed else str(self.value / self.executed)
        return {
            "orderId": self.order_id,
            "orderLinkId": self.link_id,
            "blockTradeId": "",
            "symbol": self.symbol,
            "price": "0",
            "qty": str(self.qty),
            "side": self.side,
            "isLeverage": "0",
            "positionIdx": 0,
            "orderStatus": self.status,
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": avg,
            "leavesQty": str(self.qty - self.executed if self.status in OPEN else 0),
            "leavesValue": "0",
            "cumExecQty": str(self.executed),
            "cumExecValue": str(self.value),
            "cumExecFee": str(self.fee),
            "timeInForce": "IOC",
            "orderType": "Market",
            "stopOrderType": "",
            "orderIv": "",
            "marketUnit": "baseCoin",
            "triggerPrice": "0",
            "takeProfit": "0",
            "stopLoss": "0",
            "reduceOnly": False,
            "closeOnTrigger": False,
            "createdTime": str(self.time_ms),
            "updatedTime": str(self.time_ms),
        }


class FakeBybit(FakeRestVenue):
    FEE_RATE = Decimal("0.001")
    RECV_WINDOW_HEADER = "x-bapi-recv-window"

    def __init__(self, *, key: str = "bybit-key", secret: str = "bybit-secret") -> None:
        super().__init__()
        self.key = key
        self.secret = secret
        self.markets: dict[str, dict[str, str]] = {
            "BTCUSDT": {
                "base": "BTC",
                "quote": "USDT",
                "tick": "0.01",
                "step": "0.000001",
                "min_qty": "0.000048",
                "min_amt": "1",
            },
            "ETHUSDT": {
                "base": "ETH",
                "quote": "USDT",
                "tick": "0.01",
                "step": "0.00001",
                "min_qty": "0.00062",
                "min_amt": "1",
            },
        }
        self.prices: dict[str, Decimal] = {"BTCUSDT": Decimal("60000"), "ETHUSDT": Decimal("3000")}
        self.balances: dict[str, Decimal] = {"USDT": Decimal("1000000")}
        # Where the fee is taken: "bybit" (its spot rule: a buy's in the base coin, a sell's
        # in the quote coin) or "quote" (always the quote coin).
        self.fee_asset = "bybit"
        self.orders: dict[str, _Order] = {}
        self.executions: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._ids = itertools.count(1)

    def orders_for(self, link_id: str) -> list[_Order]:
        with self.lock:
            return [o for o in self.orders.values() if o.link_id == link_id]

    def order_book(self) -> list[HeldOrder]:
        """Every order the venue accepted, with the ids of its executions."""
        with self.lock:
            return [
                HeldOrder(
                    client_order_id=o.link_id,
                    symbol=o.symbol,
                    side=o.side.lower(),
                    qty=o.qty,
                    filled=o.executed,
                    status=o.status,
                    fill_ids=tuple(
                        e["execId"] for e in self.executions if e["orderId"] == o.order_id
                    ),
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
        return request.method == "POST" and request.path == "/v5/order/create"

    def _verify(self, request: Request) -> tuple[int, Any] | None:
        h = request.headers
        if h.get("x-bapi-api-key") != self.key:
            return _err(10003, "API key is invalid.")
        payload = request.raw_body if request.method == "POST" else request.raw_query
        auth = f"{h.get('x-bapi-timestamp', '')}{self.key}{h.get(self.RECV_WINDOW_HEADER, '')}"
        expected = hmac.new(self.secret.encode(), (auth + payload).encode(), hashlib.sha256)
        if not hmac.compare_digest(h.get("x-bapi-sign", ""), expected.hexdigest()):
            self.bad_signatures += 1
            return _err(10004, "error sign! origin_string[...]")
        return None

    def route(self, request: Request) -> tuple[int, Any]:
        path, method = request.path, request.method
        if path == "/v5/market/instruments-info":
            if request.query.get("category") != "spot":
                return _ok({"category": request.query.get("category"), "list": []})
            return _ok({"category": "spot", "list": self._instruments(), "nextPageCursor": ""})
        if path == "/v5/market/tickers":
            return _ok({"category": "spot", "list": self._tickers(request.query.get("symbol"))})
        if path == "/v5/market/time":
            now = int(time.time())
            return _ok({"timeSecond": str(now), "timeNano": str(now * 10**9)})
        failure = self._verify(request)
        if failure is not None:
            return failure
        params: dict[str, Any] = json.loads(request.raw_body) if method == "POST" else request.query
        if path == "/v5/user/query-api":
            return _ok({"id": "1", "apiKey": self.key, "readOnly": 0, "uta": 1, "unified": 0})
        if path == "/v5/asset/coin/query-info":
            return _ok({"rows": [self._coin(c) for c in ("BTC", "ETH", "USDT")]})
        if path == "/v5/account/info":
            return _ok({"unifiedMarginStatus": 6, "marginMode": "REGULAR_MARGIN"})
        if path == "/v5/order/create":
            return self._create(params)
        if path in ("/v5/order/realtime", "/v5/order/history"):
            want_open = path.endswith("realtime")
            found = [
                o.to_json()
                for o in self.orders.values()
                if (o.status in OPEN) == want_open
                and params.get("symbol") in (None, o.symbol)
                and params.get("orderLinkId") in (None, o.link_id)
                and params.get("orderId") in (None, o.order_id)
            ]
            return _ok({"category": "spot", "list": found, "nextPageCursor": ""})
        if path == "/v5/order/cancel":
            matches = [
                o
                for o in self.orders.values()
                if o.order_id == params.get("orderId") or o.link_id == params.get("orderLinkId")
            ]
            if not matches or matches[0].status not in OPEN:
                return _err(170213, "Order does not exist.")
            matches[0].status = "Cancelled"
            return _ok({"orderId": matches[0].order_id, "orderLinkId": matches[0].link_id})
        if path == "/v5/execution/list":
            found = [
                e
                for e in self.executions
                if params.get("orderId") in (None, e["orderId"])
                and params.get("symbol") in (None, e["symbol"])
            ]
            return _ok({"category": "spot", "list": found, "nextPageCursor": ""})
        if path == "/v5/account/wallet-balance":
            return _ok({"list": [self._wallet()]})
        return 404, {"retCode": 10404, "retMsg": f"fake bybit: no route {method} {path}"}

    def _create(self, params: dict[str, Any]) -> tuple[int, Any]:
        symbol = params.get("symbol", "")
        if params.get("category") != "spot" or symbol not in self.markets:
            return _err(10001, "params error: symbol invalid")
        if params.get("orderType") != "Market" or params.get("marketUnit") != "baseCoin":
            return _err(10001, "fake bybit takes Market orders with marketUnit=baseCoin")
        link = params.get("orderLinkId") or ""
        if link and self.orders_for(link):
            return _err(110072, "OrderLinkedID is duplicate")
        market = self.markets[symbol]
        qty = Decimal(str(params["qty"]))
        if qty % Decimal(market["step"]) != 0 or qty < Decimal(market["min_qty"]):
            return _err(170137, "Order quantity has too many decimals.")
        fault = self.take_order_fault()
        if fault is not None and fault.kind == "reject":
            return _err(170131, "Insufficient balance.")
        order = _Order(str(uuid.uuid4()), link, symbol, params["side"], qty, "New", time_ms=_ms())
        self.orders[order.order_id] = order
        if fault is None:
            self._execute(order, qty)
        elif fault.kind == "partial":
            step = Decimal(market["step"])
            self._execute(order, (qty / 2 / step).to_integral_value() * step)
            order.status = "PartiallyFilledCanceled"
        return _ok({"orderId": order.order_id, "orderLinkId": order.link_id})

    def _execute(self, order: _Order, qty: Decimal) -> None:
        # Bybit spot charges a buy's fee in the base coin and a sell's in the quote coin
        # (``fee_asset = "bybit"``); ``"quote"`` charges both in the quote coin.
        price = self.prices[order.symbol]
        market = self.markets[order.symbol]
        base, quote = market["base"], market["quote"]
        buy = order.side == "Buy"
        in_base = buy and self.fee_asset == "bybit"
        fee = qty * self.FEE_RATE if in_base else qty * price * self.FEE_RATE
        fee_ccy = base if in_base else quote
        order.executed += qty
        order.value += qty * price
        order.fee += fee
        order.status = "Filled" if order.executed == order.qty else "PartiallyFilled"
        sign = 1 if buy else -1
        self.balances[base] = self.balances.get(base, Decimal(0)) + sign * qty
        self.balances[quote] = self.balances.get(quote, Decimal(0)) - sign * qty * price
        self.balances[fee_ccy] -= fee
        self.executions.append(
            {
                "symbol": order.symbol,
                "orderId": order.order_id,
                "orderLinkId": order.link_id,
                "side": order.side,
                "orderPrice": "0",
                "orderQty": str(order.qty),
                "leavesQty": str(order.qty - order.executed),
                "createType": "CreateByUser",
                "orderType": "Market",
                "execFee": str(fee),
                "feeCurrency": fee_ccy,
                "feeCoin": fee_ccy,  # what ccxt reads (without it, it infers Bybit's rule)
                "execId": f"e{next(self._ids)}-{uuid.uuid4().hex[:8]}",
                "execPrice": str(price),
                "execQty": str(qty),
                "execType": "Trade",
                "execValue": str(qty * price),
                "execTime": str(_ms()),
                "isMaker": False,
                "feeRate": str(self.FEE_RATE),
                "markPrice": str(price),
                "closedSize": "",
                "seq": next(self._ids),
            }
        )

    @staticmethod
    def _coin(coin: str) -> dict[str, Any]:
        chain = {
            "chainType": coin,
            "confirmation": "1",
            "withdrawFee": "0",
            "depositMin": "0",
            "withdrawMin": "0",
            "chain": coin,
            "chainDeposit": "1",
            "chainWithdraw": "1",
            "minAccuracy": "8",
            "withdrawPercentageFee": "0",
        }
        return {"name": coin, "coin": coin, "remainAmount": "1000000", "chains": [chain]}

    def _instruments(self) -> list[dict[str, Any]]:
        return [
            {
                "symbol": name,
                "baseCoin": m["base"],
                "quoteCoin": m["quote"],
                "innovation": "0",
                "status": "Trading",
                "marginTrading": "none",
                "stTag": "0",
                "lotSizeFilter": {
                    "basePrecision": m["step"],
                    "quotePrecision": "0.00000001",
                    "minOrderQty": m["min_qty"],
                    "maxOrderQty": "71.73956243",
                    "minOrderAmt": m["min_amt"],
                    "maxOrderAmt": "2000000",
                },
                "priceFilter": {"tickSize": m["tick"]},
                "riskParameters": {"limitParameter": "0.03", "marketParameter": "0.03"},
            }
            for name, m in self.markets.items()
        ]

    def _tickers(self, symbol: str | None) -> list[dict[str, Any]]:
        return [
            {
                "symbol": s,
                "bid1Price": str(p),
                "ask1Price": str(p),
                "lastPrice": str(p),
                "prevPrice24h": str(p),
                "highPrice24h": str(p),
                "lowPrice24h": str(p),
                "volume24h": "1",
                "turnover24h": str(p),
            }
            for s, p in self.prices.items()
            if symbol in (None, s)
        ]

    def _wallet(self) -> dict[str, Any]:
        return {
            "accountType": "UNIFIED",
            "totalEquity": "0",
            "totalWalletBalance": "0",
            "totalAvailableBalance": "0",
            "coin": [
                {
                    "coin": c,
                    "walletBalance": str(q),
                    "equity": str(q),
                    "locked": "0",
                    "availableToWithdraw": str(q),
                    "free": str(q),
                    "borrowAmount": "0",
                    "totalOrderIM": "0",
                    "totalPositionIM": "0",
                    "unrealisedPnl": "0",
                }
                for c, q in self.balances.items()
            ],
        }


def _ms() -> int:
    return int(time.time() * 1000)
