"""A fake Alpaca trading REST API (the ``/v2`` surface alpaca-py's ``TradingClient`` uses).

Reproduces Alpaca's documented rules: ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` headers
(401 otherwise); a reused ``client_order_id`` is refused in any state (422, code 40010001);
an unknown id on ``/v2/orders:by_client_order_id`` is 404 code 40410000; cancel answers 204,
or 422 when the order is no longer cancelable. Market orders fill at once at the symbol's
price unless a ``partial``/``rest``/``reject`` fault says otherwise; each execution is a
``FILL`` account activity with its own id.

``fill_mode`` reproduces how a real market order lives: ``immediate`` (the default, filled in
the reply), ``delayed`` (answered ``accepted``, then ``new``, then filled ``fill_delay_s``
later by a timer) and ``partial_open`` (answered ``accepted``; ``fill_delay_s`` later half is
filled and the order stays open, ``partially_filled``, until cancelled).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from ._book import HeldOrder
from ._http import FakeRestVenue, Request

__all__ = ["FakeAlpaca", "FillMode"]

FillMode = Literal["immediate", "delayed", "partial_open"]

OPEN_STATUSES = {"new", "accepted", "partially_filled", "pending_new"}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    status: str
    filled_qty: Decimal = Decimal(0)
    notional_paid: Decimal = Decimal(0)
    created_at: str = field(default_factory=_now)

    def to_json(self, asset_class: str) -> dict[str, Any]:
        avg = None if not self.filled_qty else str(self.notional_paid / self.filled_qty)
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": self.created_at,
            "updated_at": _now(),
            "submitted_at": self.created_at,
            "filled_at": _now() if self.status == "filled" else None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.symbol)),
            "symbol": self.symbol,
            "asset_class": asset_class,
            "qty": str(self.qty),
            "notional": None,
            "filled_qty": str(self.filled_qty),
            "filled_avg_price": avg,
            "order_class": "simple",
            "order_type": "market",
            "type": "market",
            "side": self.side,
            "time_in_force": "day",
            "status": self.status,
            "extended_hours": False,
        }


class FakeAlpaca(FakeRestVenue):
    def __init__(self, *, key: str = "test-key", secret: str = "test-secret") -> None:
        super().__init__()
        self.key = key
        self.secret = secret
        self.prices: dict[str, Decimal] = {"SPY": Decimal("500.25"), "AAPL": Decimal("190.10")}
        self.assets: dict[str, dict[str, Any]] = {
            "SPY": {"fractionable": True, "min_trade_increment": "0.000000001"},
            "AAPL": {"fractionable": False},
        }
        self.orders: dict[str, _Order] = {}
        self.activities: list[dict[str, Any]] = []
        self.positions: dict[str, Decimal] = {}
        self.cost: dict[str, Decimal] = {}
        self.cash = Decimal("100000")
        self.trade_time: str | None = None  # latest trade time (ISO); None: now
        self.fill_mode: FillMode = "immediate"
        self.fill_delay_s = 0.2
        self.clock_offset_s = 0.0  # the venue's clock minus the true time (a skewed venue)

    # -- helpers for tests -------------------------------------------------------------------
    def orders_for(self, client_order_id: str) -> list[_Order]:
        with self.lock:
            return [o for o in self.orders.values() if o.client_order_id == client_order_id]

    def order_book(self) -> list[HeldOrder]:
        """Every order the venue accepted, with the ids of its ``FILL`` activities."""
        with self.lock:
            return [
                HeldOrder(
                    client_order_id=o.client_order_id,
                    symbol=o.symbol,
                    side=o.side,
                    qty=o.qty,
                    filled=o.filled_qty,
                    status=o.status,
                    fill_ids=tuple(a["id"] for a in self.activities if a["order_id"] == o.id),
                )
                for o in self.orders.values()
            ]

    def holdings(self) -> dict[str, Decimal]:
        """The non-zero positions, by symbol."""
        with self.lock:
            return {s: q for s, q in self.positions.items() if q != 0}

    def fill_open(self, client_order_id: str) -> None:
        """Fill what is left of an open order (the market moved on)."""
        with self.lock:
            for order in self.orders_for(client_order_id):
                self._execute(order, order.qty - order.filled_qty)

    # -- the venue ---------------------------------------------------------------------------
    def is_submit(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/v2/orders"

    def _execute(self, order: _Order, qty: Decimal) -> None:
        if qty <= 0:
            return
        price = self.prices[order.symbol]
        order.filled_qty += qty
        order.notional_paid += qty * price
        order.status = "filled" if order.filled_qty == order.qty else "partially_filled"
        signed = qty if order.side == "buy" else -qty
        self.positions[order.symbol] = self.positions.get(order.symbol, Decimal(0)) + signed
        self.cost[order.symbol] = self.cost.get(order.symbol, Decimal(0)) + signed * price
        self.cash -= signed * price
        self.activities.append(
            {
                "id": f"{datetime.now(UTC):%Y%m%d%H%M%S%f}::{uuid.uuid4()}",
                "activity_type": "FILL",
                "transaction_time": _now(),
                "type": "fill" if order.status == "filled" else "partial_fill",
                "price": str(price),
                "qty": str(qty),
                "side": order.side,
                "symbol": order.symbol,
                "leaves_qty": str(order.qty - order.filled_qty),
                "order_id": order.id,
                "cum_qty": str(order.filled_qty),
                "order_status": order.status,
            }
        )

    def route(self, request: Request) -> tuple[int, Any]:
        headers = request.headers
        if (
            headers.get("apca-api-key-id") != self.key
            or headers.get("apca-api-secret-key") != self.secret
        ):
            return 401, {"code": 40110000, "message": "request is not authorized"}
        path, method = request.path, request.method
        if path == "/v2/orders" and method == "POST":
            return self._submit(request.json or {})
        if path == "/v2/orders:by_client_order_id" and method == "GET":
            cid = request.query.get("client_order_id", "")
            found = self.orders_for(cid)
            if not found:
                return 404, {"code": 40410000, "message": "order not found for " + cid}
            return 200, found[0].to_json("us_equity")
        if path == "/v2/orders" and method == "GET":
            status = request.query.get("status", "open")
            orders = [
                o.to_json("us_equity")
                for o in self.orders.values()
                if status == "all" or (status == "open") == (o.status in OPEN_STATUSES)
            ]
            return 200, orders
        if path.startswith("/v2/orders/"):
            order = self.orders.get(path.rsplit("/", 1)[1])
            if order is None:
                return 404, {"code": 40410000, "message": "order not found"}
            if method == "GET":
                return 200, order.to_json("us_equity")
            if method == "DELETE":
                if order.status not in OPEN_STATUSES:
                    return 422, {"code": 42210000, "message": "order is not cancelable"}
                order.status = "canceled"
                return 204, None
        if path == "/v2/clock" and method == "GET":
            stamp = datetime.fromtimestamp(time.time() + self.clock_offset_s, UTC)
            return 200, {
                "timestamp": stamp.isoformat(),
                "is_open": True,
                "next_open": stamp.isoformat(),
                "next_close": stamp.isoformat(),
            }
        if path == "/v2/positions" and method == "GET":
            return 200, [self._position(s, q) for s, q in self.positions.items() if q != 0]
        if path == "/v2/account" and method == "GET":
            return 200, {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.key)),
                "account_number": "PA0000FAKE",
                "status": "ACTIVE",
                "currency": "USD",
                "cash": str(self.cash),
                "equity": str(self.cash),
                "buying_power": str(self.cash),
            }
        if path.startswith("/v2/assets/") and method == "GET":
            return self._asset(path.rsplit("/", 1)[1])
        if path == "/v2/stocks/trades/latest":
            trades = {}
            for symbol in request.query.get("symbols", "").split(","):
                if symbol in self.prices:
                    t = self.trade_time or _now()
                    p = float(self.prices[symbol])
                    trades[symbol] = {"t": t, "x": "V", "p": p, "s": 100, "c": ["@"], "i": 1}
            return 200, {"trades": trades}
        if path == "/v2/account/activities/FILL" and method == "GET":
            return 200, list(reversed(self.activities))
        return 404, {"code": 40400000, "message": f"fake alpaca: no route {method} {path}"}

    def _submit(self, body: dict[str, Any]) -> tuple[int, Any]:
        cid = body.get("client_order_id") or str(uuid.uuid4())
        if self.orders_for(cid):
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        symbol = body.get("symbol", "")
        if symbol not in self.prices:
            return 422, {"code": 42210000, "message": f"asset {symbol!r} not found"}
        if body.get("type") != "market" or "qty" not in body:
            return 422, {"code": 42210000, "message": "fake alpaca takes market orders by qty"}
        fault = self.take_order_fault()
        if fault is not None and fault.kind == "reject":
            return 403, {"code": 40310000, "message": "insufficient buying power"}
        order = _Order(
            id=str(uuid.uuid4()),
            client_order_id=cid,
            symbol=symbol,
            side=body["side"],
            qty=Decimal(str(body["qty"])),
            status="accepted",
        )
        self.orders[order.id] = order
        if fault is None and self.fill_mode != "immediate":
            self._later(order)
        elif fault is None:
            self._execute(order, order.qty)
        elif fault.kind == "partial":
            half = (order.qty / 2).to_integral_value(rounding="ROUND_FLOOR")
            self._execute(order, half if half > 0 else order.qty / 2)
        return 200, order.to_json("us_equity")

    def _later(self, order: _Order) -> None:
        """Fill ``order`` (all of it, or half for ``partial_open``) ``fill_delay_s`` from now."""
        mode = self.fill_mode

        def work() -> None:
            with self.lock:
                if order.status not in OPEN_STATUSES:  # cancelled meanwhile
                    return
                if mode == "delayed":
                    self._execute(order, order.qty - order.filled_qty)
                else:
                    half = (order.qty / 2).to_integral_value(rounding="ROUND_FLOOR")
                    self._execute(order, half if half > 0 else order.qty / 2)

        def to_new() -> None:
            with self.lock:
                if order.status == "accepted":
                    order.status = "new"

        for delay, fn in ((self.fill_delay_s / 4, to_new), (self.fill_delay_s, work)):
            timer = threading.Timer(delay, fn)
            timer.daemon = True
            timer.start()

    def _position(self, symbol: str, qty: Decimal) -> dict[str, Any]:
        avg = self.cost[symbol] / qty
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
            "symbol": symbol,
            "exchange": "ARCA",
            "asset_class": "us_equity",
            "avg_entry_price": str(avg),
            "qty": str(qty),
            "side": "long" if qty > 0 else "short",
            "cost_basis": str(self.cost[symbol]),
            "market_value": str(qty * self.prices[symbol]),
        }

    def _asset(self, symbol: str) -> tuple[int, Any]:
        if symbol not in self.assets:
            return 404, {"code": 40410000, "message": f"asset not found for {symbol}"}
        info = self.assets[symbol]
        return 200, {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
            "class": "us_equity",
            "exchange": "ARCA",
            "symbol": symbol,
            "name": symbol,
            "status": "active",
            "tradable": True,
            "marginable": True,
            "shortable": True,
            "easy_to_borrow": True,
            "fractionable": info["fractionable"],
            "min_order_size": info.get("min_order_size"),
            "min_trade_increment": info.get("min_trade_increment"),
            "price_increment": "0.01",
        }
