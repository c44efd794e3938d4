"""The built-in paper broker: the embedded default for every venue (BROKERS.md, SPEC §8-§9).

It implements :class:`~allocator.execution.orders.Broker` like the real adapters: a market order
fills at the bar's reference price moved by ``slippage_bps`` against the order (buys pay more)
and rounded to the tick away from the trader's favour; the quantity is rounded down to the lot;
an order below the instrument's minimum notional is rejected; ``fill_ratio`` < 1 fills only that
share (rounded down to the lot) and cancels the rest (immediate-or-cancel). Fees follow a
per-venue schedule (:mod:`resources.brokers.paper.fees`). A reused client order id is refused
with :class:`~allocator.errors.DuplicateOrderError` whatever the earlier order's
state (Alpaca's rule). Orders, fills and positions live in a :class:`PaperState` — in memory,
or in the ledger (``resources.ledger.LedgerPaperState``) so that they survive a crash and
reconciliation can run against them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Protocol

from allocator.errors import DuplicateOrderError, OrderRejectedError
from allocator.execution.instruments import InstrumentTable
from allocator.execution.orders import (
    BrokerFill,
    BrokerOrder,
    OrderRequest,
    OrderState,
    Side,
    Venue,
)
from resources.brokers.paper.fees import PaperFees

__all__ = ["MemoryPaperState", "PaperBroker", "PaperBrokerConfig", "PaperState"]

_BPS = Decimal(10_000)


@dataclass(frozen=True, kw_only=True, slots=True)
class PaperBrokerConfig:
    """``slippage_bps`` >= 0 against the order; ``fill_ratio`` in (0, 1] of each order fills."""

    slippage_bps: Decimal = field(default_factory=lambda: Decimal(0))
    fill_ratio: Decimal = field(default_factory=lambda: Decimal(1))
    fees: PaperFees = field(default_factory=PaperFees)

    def __post_init__(self) -> None:
        if not self.slippage_bps.is_finite() or self.slippage_bps < 0:
            raise ValueError(f"paper broker: slippage_bps must be >= 0, got {self.slippage_bps}")
        if not self.fill_ratio.is_finite() or not 0 < self.fill_ratio <= 1:
            raise ValueError(f"paper broker: fill_ratio must lie in (0, 1], got {self.fill_ratio}")


class PaperState(Protocol):
    """Where a paper broker keeps its orders (each with its fills)."""

    def get(self, venue: str, client_order_id: str) -> BrokerOrder | None: ...

    def put(self, venue: str, order: BrokerOrder) -> None:
        """Insert or replace the order, durably, before returning."""
        ...

    def orders(self, venue: str) -> Sequence[BrokerOrder]: ...


class MemoryPaperState:
    """A :class:`PaperState` in a dict (tests, the ``net`` command)."""

    def __init__(self) -> None:
        self._orders: dict[tuple[str, str], BrokerOrder] = {}

    def get(self, venue: str, client_order_id: str) -> BrokerOrder | None:
        return self._orders.get((venue, client_order_id))

    def put(self, venue: str, order: BrokerOrder) -> None:
        self._orders[(venue, order.client_order_id)] = order

    def orders(self, venue: str) -> Sequence[BrokerOrder]:
        return [o for (v, _), o in sorted(self._orders.items()) if v == venue]


class PaperBroker:
    """A simulated venue behind the :class:`~allocator.execution.orders.Broker` interface."""

    mode = "sim"  # the venue mode journaled on its orders (SPEC §8)

    def __init__(
        self,
        *,
        venue: Venue,
        instruments: InstrumentTable,
        config: PaperBrokerConfig | None = None,
        state: PaperState | None = None,
        name: str | None = None,
    ) -> None:
        self.venue = venue
        self.name = name or f"paper-{venue.value}"
        self.instruments = instruments
        self.config = config or PaperBrokerConfig()
        self.state: PaperState = state if state is not None else MemoryPaperState()

    def _price(self, side: Side, reference: Decimal, tick: Decimal) -> Decimal:
        moved = reference * (1 + side.sign * self.config.slippage_bps / _BPS)
        rounding = ROUND_CEILING if side is Side.BUY else ROUND_FLOOR
        ticks = (moved / tick).to_integral_value(rounding=rounding)
        return (ticks * tick).normalize() if ticks * tick != 0 else tick

    def submit(self, request: OrderRequest) -> BrokerOrder:
        cid = request.client_order_id
        if self.state.get(self.name, cid) is not None:
            raise DuplicateOrderError(f"{self.name}: client order id {cid} already used")
        inst = self.instruments.get(request.symbol)
        if inst is None:
            raise OrderRejectedError(f"{self.name}: unknown symbol {request.symbol}")
        if request.reference_price is None or request.reference_price <= 0:
            raise OrderRejectedError(f"{self.name}: order {cid} has no reference price")
        qty = (request.qty / inst.lot_size).to_integral_value(rounding=ROUND_DOWN) * inst.lot_size
        if qty <= 0:
            raise OrderRejectedError(
                f"{self.name}: order {cid} qty {request.qty} is below one lot ({inst.lot_size})"
            )
        price = self._price(request.side, request.reference_price, inst.tick_size)
        if qty * price < inst.min_notional:
            raise OrderRejectedError(
                f"{self.name}: order {cid} notional {qty * price} is below the minimum "
                f"{inst.min_notional} for {request.symbol}"
            )
        lots = (qty * self.config.fill_ratio / inst.lot_size).to_integral_value(rounding=ROUND_DOWN)
        filled = lots * inst.lot_size
        fee = self.config.fees.fee(inst, self.venue, filled, price) if filled else Decimal(0)
        venue_order_id = f"{self.name}-{cid}"
        fills: tuple[BrokerFill, ...] = ()
        if filled:
            fills = (
                BrokerFill(
                    fill_id=f"{venue_order_id}-1",
                    client_order_id=cid,
                    symbol=request.symbol,
                    side=request.side,
                    qty=filled,
                    price=price,
                    fee=fee,
                    ts=datetime.now(UTC),
                ),
            )
        order = BrokerOrder(
            client_order_id=cid,
            venue_order_id=venue_order_id,
            symbol=request.symbol,
            side=request.side,
            qty=qty,
            filled_qty=filled,
            avg_price=price if filled else None,
            fee=fee,
            state=OrderState.FILLED if filled == qty else OrderState.CANCELLED,
            fills=fills,
        )
        self.state.put(self.name, order)
        return order

    def lookup(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        found = self.state.get(self.name, client_order_id)
        if found is None or found.symbol != symbol:
            return None
        return found

    def open_orders(self) -> Sequence[BrokerOrder]:
        return [o for o in self.state.orders(self.name) if not o.state.is_final]

    def positions(self) -> Mapping[str, Decimal]:
        held: dict[str, Decimal] = {}
        for order in self.state.orders(self.name):
            for fill in order.fills:
                held[fill.symbol] = held.get(fill.symbol, Decimal(0)) + fill.side.sign * fill.qty
        return {s: q for s, q in sorted(held.items()) if q != 0}

    def fills(self) -> Sequence[BrokerFill]:
        return [f for o in self.state.orders(self.name) for f in o.fills]

    def cancel(self, symbol: str, client_order_id: str) -> None:
        found = self.lookup(symbol, client_order_id)
        if found is None:
            raise OrderRejectedError(f"{self.name}: no order {client_order_id} for {symbol}")
        if found.state.is_final:
            return
        self.state.put(
            self.name,
            BrokerOrder(
                client_order_id=found.client_order_id,
                venue_order_id=found.venue_order_id,
                symbol=found.symbol,
                side=found.side,
                qty=found.qty,
                filled_qty=found.filled_qty,
                avg_price=found.avg_price,
                fee=found.fee,
                state=OrderState.CANCELLED,
                fills=found.fills,
            ),
        )
