"""The Interactive Brokers adapter: ib_async's ``IB`` on its own event-loop thread.

Every call runs as a coroutine on that loop and is bounded by ``timeout_s``. IB never
deduplicates ``orderRef`` (BROKERS.md): the client order id goes out as ``orderRef`` and
:meth:`IbkrBroker.lookup` scans this session's trades, the completed orders and the
executions for it, which :func:`allocator.execution.orders.submit_idempotently` does before every
(re)submit. One fixed ``client_id`` lets a reconnect see its own open orders.

Tested offline against tests/fakes/fake_tws.py (protocol, lifecycle, reconnect; not margin,
permissions, contract months or market hours).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from ib_async import IB, MarketOrder

from allocator.errors import AmbiguousBrokerError, BrokerError, ConfigError, OrderRejectedError
from allocator.execution.orders import (
    AssetClass,
    BrokerFill,
    BrokerOrder,
    OrderRequest,
    Side,
    Venue,
)
from resources.brokers.common import InstrumentRules, TradingMode, decimal_text, to_decimal
from resources.brokers.ibkr.errors import REJECTED
from resources.brokers.ibkr.mapping import contract_for, position_key, to_broker_order

__all__ = ["IbkrBroker"]

T = TypeVar("T")
_WORKING = {"PendingSubmit", "ApiPending"}
_DONE = {"Filled", "Cancelled", "ApiCancelled", "Inactive"}


class IbkrBroker:
    """TWS / IB Gateway as a :class:`~allocator.execution.orders.Broker` (stock, FX, futures)."""

    name = Venue.IBKR.value
    server_time_resolution_s = 1.0  # reqCurrentTime answers whole seconds

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 1,
        mode: TradingMode = "paper",
        timeout_s: float = 10.0,
        account: str = "",
        settle_s: float = 0.25,
    ) -> None:
        if mode not in ("paper", "live"):
            raise ConfigError("ibkr.mode", f"must be 'paper' or 'live', got {mode!r}")
        self.host, self.port, self.client_id = host, port, client_id
        self.mode: TradingMode = mode
        self.timeout_s = timeout_s
        self.account = account
        self.settle_s = settle_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._ib: IB | None = None
        self._connecting = threading.Lock()
        self._contracts: dict[tuple[str, AssetClass], Any] = {}
        self._one_at_a_time: dict[str, asyncio.Lock] = {}

    # -- loop plumbing ----------------------------------------------------------------------
    def run(self, call: Callable[[], Awaitable[T]], timeout_s: float | None = None) -> T:
        """Run ``call()`` on the loop thread and wait for it, bounded. ib_async's ``*Async``
        request methods send at once and create their future on the current loop, so the
        call itself (not only the awaiting) must happen on the loop thread."""
        limit = timeout_s or self.timeout_s

        async def on_loop() -> T:
            return await call()

        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(on_loop(), limit), self._loop)
        try:
            return future.result(limit + 1)
        except TimeoutError as exc:
            raise AmbiguousBrokerError(f"ibkr: no answer within {limit}s") from exc
        except ConnectionError as exc:
            raise AmbiguousBrokerError(f"ibkr: connection lost: {exc}") from exc

    @property
    def ib(self) -> IB:
        # One session per broker: the bar's concurrent calls must not each connect (TWS
        # refuses a second session with the same client id).
        with self._connecting:
            if self._ib is None or not self._ib.isConnected():
                if self._ib is not None:  # a dropped session: release its transport first
                    old, self._ib = self._ib, None
                    self.run(lambda: self._disconnect(old))
                self._ib = self.run(self._connect)
            return self._ib

    async def _alone(self, kind: str, request: Callable[[], Awaitable[T]]) -> T:
        """``request()`` with no other request of its ``kind`` in flight on this session.

        ib_async keeps one future per request kind for the requests without a request id
        (``completedOrders``, ``openOrders``, ``positions``): a second one sent while the first
        waits replaces its future, and the first never gets an answer. A bar's orders are
        looked up concurrently, so these requests queue here (on the loop thread).
        """
        lock = self._one_at_a_time.setdefault(kind, asyncio.Lock())
        async with lock:
            return await request()

    async def _connect(self) -> IB:
        ib = IB()
        await ib.connectAsync(self.host, self.port, self.client_id, timeout=self.timeout_s)
        accounts = ib.managedAccounts()
        account = self.account or (accounts[0] if accounts else "")
        is_paper = account.startswith("D")  # IB paper accounts are DU.../DF...
        if (self.mode == "live") == is_paper:
            ib.disconnect()
            raise ConfigError(
                "ibkr.mode",
                f"mode {self.mode!r} but the gateway at {self.host}:{self.port} serves "
                f"{'a paper' if is_paper else 'a live'} account",
            )
        self.account = account
        return ib

    def close(self) -> None:
        if self._ib is not None and self._loop.is_running():
            ib, self._ib = self._ib, None
            with contextlib.suppress(BrokerError):
                self.run(lambda: self._disconnect(ib))
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    @staticmethod
    async def _disconnect(ib: IB) -> None:
        ib.disconnect()
        for _ in range(3):  # let the transport close on this loop
            await asyncio.sleep(0)

    # -- instruments -----------------------------------------------------------------------
    def contract(self, symbol: str, asset_class: AssetClass) -> Any:
        key = (symbol, asset_class)
        if key not in self._contracts:
            raw = contract_for(symbol, asset_class)
            ib = self.ib
            qualified = self.run(lambda: ib.qualifyContractsAsync(raw))
            if not qualified or qualified[0] is None:
                raise BrokerError(f"ibkr: no contract for {symbol} ({asset_class})")
            self._contracts[key] = qualified[0]
        return self._contracts[key]

    def rules(self, symbol: str, asset_class: AssetClass) -> InstrumentRules:
        contract = self.contract(symbol, asset_class)
        ib = self.ib
        details = self.run(lambda: ib.reqContractDetailsAsync(contract))
        if not details:
            raise BrokerError(f"ibkr: no contract details for {symbol}")
        d = details[0]
        step = to_decimal(d.sizeIncrement or 1, f"{symbol} sizeIncrement")
        return InstrumentRules(
            symbol=symbol,
            lot_step=step,
            min_qty=to_decimal(d.minSize or step, f"{symbol} minSize"),
            tick=to_decimal(d.minTick, f"{symbol} minTick") if d.minTick else None,
        )

    # -- Broker ------------------------------------------------------------------------------
    def submit(self, request: OrderRequest) -> BrokerOrder:
        contract = self.contract(request.symbol, request.asset_class)
        qty = self.rules(request.symbol, request.asset_class).apply(request)
        action = "BUY" if request.side is Side.BUY else "SELL"
        # ib_async types totalQuantity as a float but writes each field with str() (text as
        # it is): exact decimal text reaches TWS as "4" or "0.5", never "4.0" or "1e-05".
        order = MarketOrder(action, decimal_text(qty), orderRef=request.client_order_id)
        if self.account:
            order.account = self.account
        ib = self.ib
        trade = self.run(lambda: self._place(ib, contract, order))
        errors = [e for e in trade.log if e.errorCode == REJECTED]
        if errors:
            raise OrderRejectedError(f"ibkr submit: rejected, {errors[-1].message}")
        if trade.orderStatus.status in _WORKING:
            raise AmbiguousBrokerError(
                f"ibkr submit: no order status within {self.timeout_s}s for {order.orderRef}"
            )
        return to_broker_order(request.symbol, trade, self._fills(trade))

    async def _place(self, ib: IB, contract: Any, order: Any) -> Any:
        trade = ib.placeOrder(contract, order)
        await self._settle(ib, trade)
        return trade

    async def _settle(self, ib: IB, trade: Any) -> None:
        """Wait (bounded) until TWS acknowledged the trade, then ``settle_s`` more for fills
        of a working order (a market order fills within milliseconds of its acknowledgement)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s * 0.8
        acked_at: float | None = None
        while ib.isConnected() and loop.time() < deadline:
            status = trade.orderStatus.status
            if any(e.errorCode == REJECTED for e in trade.log) or status in _DONE:
                return
            if status not in _WORKING:
                acked_at = acked_at or loop.time()
                if loop.time() - acked_at >= self.settle_s:
                    return
            await asyncio.sleep(0.02)

    def _fills(self, trade: Any) -> tuple[BrokerFill, ...]:
        fills: dict[str, BrokerFill] = {}
        for fill in trade.fills:
            ex = fill.execution
            fee = fill.commissionReport.commission if fill.commissionReport else 0
            fills[ex.execId] = BrokerFill(
                fill_id=ex.execId,
                client_order_id=trade.order.orderRef,
                symbol=position_key(trade.contract),
                side=Side.BUY if ex.side in ("BOT", "BUY") else Side.SELL,
                qty=to_decimal(ex.shares, "IB shares"),
                price=to_decimal(ex.price, "IB price"),
                fee=to_decimal(fee or 0, "IB commission"),
                ts=ex.time,
            )
        return tuple(sorted(fills.values(), key=lambda f: f.fill_id))

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        ib = self.ib
        return self.run(lambda: self._lookup(ib, symbol, client_order_id))

    async def _lookup(self, ib: IB, symbol: str, client_order_id: str) -> BrokerOrder | None:
        for trade in ib.trades():
            if trade.order.orderRef == client_order_id:
                if trade.orderStatus.status in _WORKING:
                    await self._settle(ib, trade)
                if trade.orderStatus.status in _WORKING:
                    raise AmbiguousBrokerError(
                        f"ibkr lookup {client_order_id}: placed in this session, not acknowledged"
                    )
                return self._priced(to_broker_order(symbol, trade, self._fills(trade)))
        completed = await self._alone(
            "completedOrders", lambda: ib.reqCompletedOrdersAsync(apiOnly=False)
        )
        for trade in completed:
            if trade.order.orderRef == client_order_id:
                return self._priced(to_broker_order(symbol, trade, self._fills(trade)))
        for fill in await ib.reqExecutionsAsync():
            if fill.execution.orderRef == client_order_id:
                raise AmbiguousBrokerError(
                    f"ibkr lookup {client_order_id}: executions exist but no order record yet"
                )
        return None

    @staticmethod
    def _priced(order: BrokerOrder) -> BrokerOrder:
        """A filled quantity without a price (no avgFillPrice, no executions yet) cannot be
        settled: the lookup is ambiguous and must be repeated, never guessed."""
        if order.filled_qty > 0 and order.avg_price is None:
            raise AmbiguousBrokerError(
                f"ibkr lookup {order.client_order_id}: {order.filled_qty} filled but neither an "
                "average price nor executions are known yet"
            )
        return order

    def open_orders(self) -> Sequence[BrokerOrder]:
        ib = self.ib
        trades = self.run(lambda: self._alone("openOrders", ib.reqAllOpenOrdersAsync))
        return [
            to_broker_order(position_key(t.contract), t, self._fills(t))
            for t in trades
            if t.order.orderRef
        ]

    def positions(self) -> Mapping[str, Decimal]:
        ib = self.ib
        positions = self.run(lambda: self._alone("positions", ib.reqPositionsAsync))
        return {
            position_key(p.contract): to_decimal(p.position, "IB position")
            for p in positions
            if p.position
        }

    def cancel(self, symbol: str, client_order_id: str) -> None:
        ib = self.ib
        self.run(lambda: self._cancel(ib, client_order_id))

    def server_time(self) -> datetime:
        """TWS's clock (``reqCurrentTime``, whole seconds), timezone-aware UTC (``allocator
        doctor``)."""
        ib = self.ib
        stamp: datetime = self.run(ib.reqCurrentTimeAsync)
        return stamp.astimezone(UTC)

    async def _cancel(self, ib: IB, client_order_id: str) -> None:
        for trade in ib.openTrades():
            if trade.order.orderRef == client_order_id:
                ib.cancelOrder(trade.order)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + self.timeout_s * 0.8
                while trade.orderStatus.status not in _DONE and loop.time() < deadline:
                    await asyncio.sleep(0.02)
                return
        raise BrokerError(f"ibkr: cannot cancel {client_order_id}: no open order with that ref")
