"""A fake TWS / IB Gateway: a threaded socket server on 127.0.0.1 speaking the TWS API.

What it proves: that the IB adapter and the real ``ib_async`` client agree on the **wire
protocol** (4-byte big-endian length frames of NUL-separated fields, the ``API\\0 v157..178``
handshake, server version 178, startApi, the sync at connect), the **order lifecycle** (placeOrder
answered by openOrder, orderStatus, execDetails with a unique execId and commissionReport; error
201 rejects; partial fills; cancel answered by orderStatus ``Cancelled`` and error 202;
completed orders and executions listed by orderRef) and **reconnects** (a socket closed after
the order was accepted, before or after the fill; a restarted gateway whose open orders a new
client with the same clientId sees at sync). Like IB it never deduplicates ``orderRef``.

What it does not prove: margin and buying power, account permissions, contract months and
expiries (one fixed ES contract), market hours and auctions, price discovery (fills at a fixed
price), pacing limits, order types other than market orders, FA accounts, or anything TWS
decides on its own (precautionary settings, order presets, confirmations).

The message layouts it sends are not hard-coded: :func:`derive_layouts` runs ib_async's own
``Decoder`` handlers on probe fields and records which field index lands in which attribute
(``tests/brokers/test_tws_layout.py`` pins those positions, so an ib_async upgrade that moves a
field fails there first). The placeOrder fields it reads are located the same way, by running
ib_async's ``Client.placeOrder`` on a probe order (:func:`derive_place_order_layout`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from unittest import mock

import ib_async.decoder as ib_decoder
from ib_async import Contract, Order
from ib_async.client import Client
from ib_async.decoder import Decoder

from ._book import HeldOrder

__all__ = [
    "SERVER_VERSION",
    "FakeTws",
    "Layout",
    "derive_layouts",
    "derive_place_order_layout",
]

SERVER_VERSION = Client.MaxClientVersion
ACCOUNT = "DU1234567"
_NO_DEFINITION = "No security definition has been found for the request"

# Incoming (client -> TWS) message ids, from ib_async.client.
START_API, PLACE_ORDER, CANCEL_ORDER, REQ_OPEN_ORDERS, REQ_ALL_OPEN_ORDERS = 71, 3, 4, 5, 16
REQ_POSITIONS, REQ_EXECUTIONS, REQ_IDS, REQ_CONTRACT_DETAILS = 61, 7, 8, 9
REQ_ACCOUNT_UPDATES, REQ_ACCOUNT_UPDATES_MULTI, REQ_COMPLETED_ORDERS = 6, 76, 99
REQ_CURRENT_TIME = 49

# Outgoing (TWS -> client) message ids: the keys of ib_async's Decoder.handlers.
OUT = {
    "orderStatus": 3,
    "errorMsg": 4,
    "openOrder": 5,
    "nextValidId": 9,
    "contractDetails": 10,
    "execDetails": 11,
    "managedAccounts": 15,
    "contractDetailsEnd": 52,
    "openOrderEnd": 53,
    "accountDownloadEnd": 54,
    "execDetailsEnd": 55,
    "currentTime": 49,
    "commissionReport": 59,
    "position": 61,
    "positionEnd": 62,
    "accountUpdateMultiEnd": 74,
    "completedOrder": 101,
    "completedOrdersEnd": 102,
}


# -- layouts derived from ib_async's decoder ------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where each named value sits in one outgoing message.

    ``positions`` maps a name (``order.orderRef``, ``contract.symbol``, ``execId``...) to its
    field index (0 is the message id); ``counts`` are indices read as a count or flag with
    ``int()``, sent as ``"0"``; ``length`` is the number of fields.
    """

    msg_id: int
    length: int
    positions: dict[str, int]
    counts: frozenset[int] = frozenset()
    version: str = ""

    def encode(self, values: dict[str, Any]) -> list[str]:
        fields = [""] * self.length
        fields[0] = str(self.msg_id)
        if self.version and self.positions.get("_version") is None and self.length > 1:
            fields[1] = self.version
        for index in self.counts:
            fields[index] = "0"
        for name, value in values.items():
            if name not in self.positions:
                raise KeyError(f"{name!r} is not a field of message {self.msg_id}")
            fields[self.positions[name]] = _text(value)
        return fields


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


class _Probe(str):
    """A field value that remembers its index. It reads as ``""`` for strings; ``int()`` and
    ``float()`` give a coded number (index + ``_CODE``) unless the index is a known count;
    it is truthy only in ``truthy`` mode (for handlers without branches, ``x or 0``)."""

    index: int
    truthy: bool

    def __new__(cls, index: int, truthy: bool) -> _Probe:
        probe = super().__new__(cls, "")
        probe.index = index
        probe.truthy = truthy
        return probe

    def __bool__(self) -> bool:
        return self.truthy

    def __int__(self) -> int:
        _INT_READS.append(self.index)
        return 0 if self.index in _ZEROS else _CODE + self.index

    def __float__(self) -> float:
        return float(_CODE + self.index)

    def split(self, *args: Any, **kwargs: Any) -> list[str]:  # type: ignore[override]
        return [self]


_CODE = 1_000_000
_INT_READS: list[int] = []
_ZEROS: set[int] = set()


class _Recorder:
    """Stands in for ib_async's Wrapper: records each callback's arguments by name."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.ib = type("IBStub", (), {"TimezoneTWS": None})()
        self.defaultTimezone = UTC

    def __getattr__(self, name: str) -> Callable[..., None]:
        from ib_async.wrapper import Wrapper

        params = list(inspect.signature(getattr(Wrapper, name)).parameters)[1:]

        def record(*args: Any) -> None:
            self.calls.append((name, dict(zip(params, args, strict=False))))

        return record


def _collect(prefix: str, value: Any, out: dict[str, int]) -> None:
    if isinstance(value, _Probe):
        out[prefix] = value.index
    elif isinstance(value, float | int) and not isinstance(value, bool):
        if _CODE <= value < _CODE + 10_000:
            out[prefix] = int(value) - _CODE
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _collect(f"{prefix}.{f.name}", getattr(value, f.name), out)


def _decode(msg_id: int, length: int, truthy: bool) -> _Recorder:
    recorder = _Recorder()
    decoder = Decoder(recorder, SERVER_VERSION)  # type: ignore[arg-type]
    decoder.parse = lambda obj: None  # type: ignore[method-assign]
    fields = [str(msg_id)] + [_Probe(i, truthy) for i in range(1, length)]
    _INT_READS.clear()
    with mock.patch.object(ib_decoder, "parseIBDatetime", _stamp):
        decoder.handlers[msg_id](list(fields))
    return recorder


def _attempt(name: str, msg_id: int, truthy: bool) -> Layout:
    try:
        _decode(msg_id, 400, truthy)
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        if "too many values" not in str(exc) and _INT_READS:
            last = _INT_READS[-2] if isinstance(exc, KeyError) else _INT_READS[-1]
            return Layout(msg_id, 0, {}, frozenset({last}))
    for length in range(2, 400):
        try:
            recorder = _decode(msg_id, length, truthy)
        except (ValueError, IndexError, TypeError, KeyError):
            continue
        if not recorder.calls:
            continue
        _, args = recorder.calls[-1]
        positions: dict[str, int] = {}
        for arg, value in args.items():
            _collect(arg, value, positions)
        positions.update(_STAMPS)
        _STAMPS.clear()
        return Layout(msg_id, length, positions, frozenset(_INT_READS) | _ZEROS)
    raise AssertionError(f"ib_async's decoder never accepted a {name} ({msg_id}) message")


def _probe_handler(name: str, msg_id: int, truthy: bool) -> Layout:
    """Run the decoder's handler for ``msg_id`` on probe fields: first find the fields it
    reads as counts (a count read as a huge number makes it run off the end), then the
    shortest message it accepts, then where each probe landed."""
    _ZEROS.clear()
    for _ in range(64):
        layout = _attempt(name, msg_id, truthy)
        # an int read that reaches no attribute is a count or a flag: it must read as 0
        flags = set(layout.counts) - set(layout.positions.values()) - _ZEROS
        if layout.length and not flags:
            return dataclasses.replace(layout, counts=frozenset(_ZEROS))
        _ZEROS.update(flags)
    raise AssertionError(f"ib_async's decoder never accepted a {name} ({msg_id}) message")


_STAMPS: dict[str, int] = {}


def _stamp(s: Any) -> datetime:
    if isinstance(s, _Probe):
        _STAMPS["time"] = s.index
    return datetime(2026, 1, 2, tzinfo=UTC)


def _wrapped(msg_id: int, handler: Any) -> Layout | None:
    """A ``Decoder.wrap`` handler: its closure holds the method name, types and skip."""
    closure = inspect.getclosurevars(handler).nonlocals
    if "types" not in closure:
        return None
    from ib_async.wrapper import Wrapper

    params = list(inspect.signature(getattr(Wrapper, closure["methodName"])).parameters)[1:]
    skip = closure["skip"]
    positions = {p: skip + i for i, p in enumerate(params[: len(closure["types"])])}
    return Layout(msg_id, skip + len(closure["types"]), positions, version="1" if skip == 2 else "")


_TRUTHY = {"execDetails", "commissionReport", "position", "errorMsg"}


def derive_layouts() -> dict[str, Layout]:
    """The layout of every message the fake sends, read from ib_async's Decoder."""
    decoder = Decoder(_Recorder(), SERVER_VERSION)  # type: ignore[arg-type]
    layouts: dict[str, Layout] = {}
    for name, msg_id in OUT.items():
        wrapped = _wrapped(msg_id, decoder.handlers[msg_id])
        if wrapped is not None:
            layouts[name] = wrapped
        else:
            probed = _probe_handler(name, msg_id, truthy=name in _TRUTHY)
            version = "1" if 1 not in probed.positions.values() else ""
            layouts[name] = dataclasses.replace(probed, version=version)
    return layouts


def derive_place_order_layout() -> dict[str, int]:
    """Field index of each order/contract attribute in ib_async's placeOrder message."""
    sent: list[tuple[Any, ...]] = []
    client = Client(mock.Mock())
    client._serverVersion = SERVER_VERSION
    client.send = lambda *fields, **kw: sent.append(fields)  # type: ignore[method-assign]
    contract = Contract(
        conId=11, symbol="P_SYMBOL", secType="P_SECTYPE", exchange="P_EXCHANGE",
        currency="P_CURRENCY", lastTradeDateOrContractMonth="P_LASTTRADE",
        localSymbol="P_LOCALSYMBOL",
    )  # fmt: skip
    order = Order(
        action="P_ACTION", totalQuantity=12345.0, orderType="P_ORDERTYPE",
        account="P_ACCOUNT", orderRef="P_ORDERREF", tif="P_TIF",
    )  # fmt: skip
    client.placeOrder(777, contract, order)
    (message,) = sent
    flat: list[Any] = []
    for item in message:  # a Contract goes out as its 12 fields (Client.send)
        if isinstance(item, Contract):
            flat += [
                item.conId, item.symbol, item.secType, item.lastTradeDateOrContractMonth,
                item.strike, item.right, item.multiplier, item.exchange,
                item.primaryExchange, item.currency, item.localSymbol, item.tradingClass,
            ]  # fmt: skip
        else:
            flat.append(item)
    probes = {
        "orderId": 777,
        "contract.conId": 11,
        "contract.symbol": "P_SYMBOL",
        "contract.secType": "P_SECTYPE",
        "contract.lastTradeDateOrContractMonth": "P_LASTTRADE",
        "contract.exchange": "P_EXCHANGE",
        "contract.currency": "P_CURRENCY",
        "contract.localSymbol": "P_LOCALSYMBOL",
        "order.action": "P_ACTION",
        "order.totalQuantity": 12345.0,
        "order.orderType": "P_ORDERTYPE",
        "order.tif": "P_TIF",
        "order.account": "P_ACCOUNT",
        "order.orderRef": "P_ORDERREF",
    }
    layout = {name: flat.index(value) for name, value in probes.items()}
    layout["_length"] = len(flat)
    return layout


# -- the venue -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Instrument:
    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    currency: str
    local_symbol: str
    price: Decimal
    last_trade: str = ""
    multiplier: str = ""
    primary_exchange: str = ""
    min_tick: str = "0.01"
    min_size: str = "1"
    size_increment: str = "1"

    def contract_values(self, prefix: str = "contract.") -> dict[str, Any]:
        values = {
            "conId": self.con_id,
            "symbol": self.symbol,
            "secType": self.sec_type,
            "lastTradeDateOrContractMonth": self.last_trade,
            "multiplier": self.multiplier,
            "exchange": self.exchange,
            "currency": self.currency,
            "localSymbol": self.local_symbol,
            "tradingClass": self.symbol if self.sec_type != "CASH" else self.local_symbol,
        }
        return {prefix + k: v for k, v in values.items()}


INSTRUMENTS = (
    _Instrument(756733, "SPY", "STK", "SMART", "USD", "SPY", Decimal("500.25"),
                primary_exchange="ARCA"),
    _Instrument(12087792, "EUR", "CASH", "IDEALPRO", "USD", "EUR.USD", Decimal("1.0850"),
                min_tick="0.00005", min_size="1", size_increment="1"),
    _Instrument(495512563, "ES", "FUT", "CME", "USD", "ESM5", Decimal("5300.25"),
                last_trade="20250620", multiplier="50", min_tick="0.25"),
)  # fmt: skip


@dataclass
class TwsOrder:
    order_id: int
    client_id: int
    perm_id: int
    instrument: _Instrument
    action: str
    qty: Decimal
    order_type: str
    account: str
    order_ref: str
    status: str = "Submitted"
    fills: list[tuple[str, Decimal, Decimal, datetime]] = field(default_factory=list)

    @property
    def filled(self) -> Decimal:
        return sum((q for _, q, _, _ in self.fills), Decimal(0))

    @property
    def avg_price(self) -> Decimal:
        filled = self.filled
        if not filled:
            return Decimal(0)
        return sum((q * p for _, q, p, _ in self.fills), Decimal(0)) / filled

    @property
    def is_open(self) -> bool:
        return self.status in ("PreSubmitted", "Submitted")


@dataclass(frozen=True, kw_only=True)
class Fault:
    """``reject``, ``partial``, ``rest``; ``hold`` (answer ``hold_s`` late); ``disconnect``
    (close the socket after accepting, ``fill`` before closing or not); ``drop`` (close the
    socket before the order is accepted)."""

    kind: str
    hold_s: float = 1.5
    fill: bool = True


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.client_id: int | None = None
        self.closed = False

    def send(self, fields: list[str]) -> None:
        payload = "".join(f + "\0" for f in fields).encode()
        with self.lock:
            if not self.closed:
                with contextlib.suppress(OSError):
                    self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
                self.sock.close()


class FakeTws:
    """The fake gateway. ``start()``/``stop()``/``restart()``; ``inject()`` queues a fault
    consumed by the next placeOrder; ``orders_for(ref)`` are the venue's orders with that
    orderRef (IB keeps duplicates); ``log`` holds every incoming message id."""

    def __init__(self) -> None:
        self.layouts = derive_layouts()
        self.place_layout = derive_place_order_layout()
        self.lock = threading.RLock()
        self.orders: list[TwsOrder] = []
        self.positions: dict[int, Decimal] = {}
        self.faults: list[Fault] = []
        self.log: list[int] = []
        self.received_qty: list[str] = []  # order.totalQuantity of each placeOrder, as text
        self.clock_offset_s = 0.0  # the gateway's clock minus the true time (a skewed venue)
        self.port = 0
        self._perm_ids = itertools.count(1_500_000_001)
        self._exec_ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._conns: list[_Conn] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeTws:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self.lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads = []

    def restart(self) -> None:
        """Drop every client and listen again on the same port; orders and positions stay."""
        self.stop()
        self.start()

    def inject(self, kind: str, **options: Any) -> None:
        """Queue a fault; the REST contract's ``status`` maps to IB's nearest failure: a
        socket closed after acceptance (``when="after"``) or before it (``when="before"``)."""
        if kind == "status":
            when = options.get("when", "after")
            fault = Fault(kind="disconnect") if when == "after" else Fault(kind="drop")
        else:
            fault = Fault(kind=kind, **options)
        with self.lock:
            self.faults.append(fault)

    def orders_for(self, order_ref: str) -> list[TwsOrder]:
        with self.lock:
            return [o for o in self.orders if o.order_ref == order_ref]

    def order_book(self) -> list[HeldOrder]:
        """Every order the gateway accepted (its ``orderRef`` as the client order id, the
        contract's local symbol: ``SPY``, ``EUR.USD``, ``ESM5``), with its execIds."""
        with self.lock:
            return [
                HeldOrder(
                    client_order_id=o.order_ref,
                    symbol=o.instrument.local_symbol,
                    side=o.action.lower(),
                    qty=o.qty,
                    filled=o.filled,
                    status=o.status,
                    fill_ids=tuple(f[0] for f in o.fills),
                )
                for o in self.orders
            ]

    def holdings(self) -> dict[str, Decimal]:
        """The non-zero positions, by the contract's local symbol."""
        with self.lock:
            return {i.local_symbol: q for i in INSTRUMENTS if (q := self.positions.get(i.con_id))}

    # -- socket plumbing -------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            with self.lock:
                self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    @staticmethod
    def _read_exact(sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("client closed")
            data += chunk
        return data

    def _read_frame(self, sock: socket.socket) -> list[str]:
        (size,) = struct.unpack(">I", self._read_exact(sock, 4))
        return self._read_exact(sock, size).decode().split("\0")[:-1]

    def _serve(self, conn: _Conn) -> None:
        try:
            if self._read_exact(conn.sock, 4) != b"API\0":
                raise ConnectionError("not a TWS API client")
            (size,) = struct.unpack(">I", self._read_exact(conn.sock, 4))
            version_range = self._read_exact(conn.sock, size).decode()  # "v157..178[ opts]"
            low, _, high = (version_range.split() or [""])[0].lstrip("v").partition("..")
            if not int(low) <= SERVER_VERSION <= int(high):
                raise ConnectionError(f"client versions {version_range} exclude {SERVER_VERSION}")
            conn.send([str(SERVER_VERSION), datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")])
            while not conn.closed:
                fields = self._read_frame(conn.sock)
                with self.lock:
                    self.log.append(int(fields[0]))
                self._handle(conn, fields)
        except (ConnectionError, OSError, struct.error, ValueError):
            pass
        finally:
            conn.close()

    def _error(self, conn: _Conn, req_id: int, code: int, text: str) -> None:
        self._send(conn, "errorMsg", reqId=req_id, errorCode=code, errorString=text)

    def _send(self, conn: _Conn, name: str, **values: Any) -> None:
        conn.send(self.layouts[name].encode(values))

    # -- requests --------------------------------------------------------------------------
    def _handle(self, conn: _Conn, fields: list[str]) -> None:
        msg_id = int(fields[0])
        if msg_id == START_API:
            conn.client_id = int(fields[2])
            self._send(conn, "managedAccounts", accountsList=ACCOUNT)
            self._send(conn, "nextValidId", reqId=self._next_id())
        elif msg_id == REQ_IDS:
            self._send(conn, "nextValidId", reqId=self._next_id())
        elif msg_id == REQ_POSITIONS:
            with self.lock:
                held = [(i, q) for i in INSTRUMENTS if (q := self.positions.get(i.con_id))]
            for instrument, qty in held:
                self._send(
                    conn,
                    "position",
                    account=ACCOUNT,
                    posSize=qty,
                    avgCost=instrument.price,
                    **instrument.contract_values(),
                )
            self._send(conn, "positionEnd")
        elif msg_id in (REQ_OPEN_ORDERS, REQ_ALL_OPEN_ORDERS):
            with self.lock:
                listed = [
                    o
                    for o in self.orders
                    if o.is_open
                    and (msg_id == REQ_ALL_OPEN_ORDERS or o.client_id == conn.client_id)
                ]
            for order in listed:
                self._send_open_order(conn, order)
                self._send_status(conn, order)
            self._send(conn, "openOrderEnd")
        elif msg_id == REQ_COMPLETED_ORDERS:
            with self.lock:
                done = [o for o in self.orders if not o.is_open]
            for order in done:
                self._send_completed(conn, order)
            self._send(conn, "completedOrdersEnd")
        elif msg_id == REQ_EXECUTIONS:
            req_id = int(fields[2])
            with self.lock:
                fills = [(o, f) for o in self.orders for f in o.fills]
            for order, fill in fills:
                self._send_fill(conn, order, fill, req_id=req_id)
            self._send(conn, "execDetailsEnd", reqId=req_id)
        elif msg_id == REQ_ACCOUNT_UPDATES:
            self._send(conn, "accountDownloadEnd", _account=fields[3])
        elif msg_id == REQ_ACCOUNT_UPDATES_MULTI:
            self._send(conn, "accountUpdateMultiEnd", reqId=int(fields[2]))
        elif msg_id == REQ_CONTRACT_DETAILS:
            self._contract_details(conn, fields)
        elif msg_id == PLACE_ORDER:
            self._place(conn, fields)
        elif msg_id == CANCEL_ORDER:
            self._cancel(conn, int(fields[2]))
        elif msg_id == REQ_CURRENT_TIME:
            self._send(conn, "currentTime", time=int(time.time() + self.clock_offset_s))

    def _next_id(self) -> int:
        with self.lock:
            return max((o.order_id for o in self.orders), default=0) + 1

    def _contract_details(self, conn: _Conn, fields: list[str]) -> None:
        req_id = int(fields[2])
        symbol, sec_type = fields[4], fields[5]
        currency, local_symbol = fields[12], fields[13]
        matches = [
            i
            for i in INSTRUMENTS
            if i.sec_type == sec_type
            and (i.symbol == symbol or i.local_symbol == local_symbol)
            and (not currency or i.currency == currency)
        ]
        for i in matches:
            self._send(
                conn,
                "contractDetails",
                reqId=req_id,
                **{
                    "contractDetails.minTick": i.min_tick,
                    "contractDetails.minSize": i.min_size,
                    "contractDetails.sizeIncrement": i.size_increment,
                    "contractDetails.suggestedSizeIncrement": i.size_increment,
                    "contractDetails.marketName": i.symbol,
                    "contractDetails.contract.primaryExchange": i.primary_exchange,
                },
                **{
                    k.replace("contract.", "contractDetails.contract.", 1): v
                    for k, v in i.contract_values().items()
                    if k != "contract.lastTradeDateOrContractMonth"
                },
                **{"contractDetails.contract.lastTradeDateOrContractMonth": i.last_trade},
            )
        if not matches:
            self._error(conn, req_id, 200, _NO_DEFINITION)
        self._send(conn, "contractDetailsEnd", reqId=req_id)

    def _place(self, conn: _Conn, fields: list[str]) -> None:
        at = self.place_layout
        with self.lock:
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None and fault.kind == "drop":
            conn.close()
            return
        order_id = int(fields[at["orderId"]])
        con_id, symbol = fields[at["contract.conId"]], fields[at["contract.symbol"]]
        instrument = next(
            (i for i in INSTRUMENTS if str(i.con_id) == con_id or i.symbol == symbol), None
        )
        if instrument is None:
            self._error(conn, order_id, 200, _NO_DEFINITION)
            return
        if fault is not None and fault.kind == "reject":
            self._send(
                conn,
                "errorMsg",
                reqId=order_id,
                errorCode=201,
                errorString="Order rejected - reason:Insufficient margin (fake TWS fault)",
            )
            return
        with self.lock:
            self.received_qty.append(fields[at["order.totalQuantity"]])
            order = TwsOrder(
                order_id=order_id,
                client_id=conn.client_id or 0,
                perm_id=next(self._perm_ids),
                instrument=instrument,
                action=fields[at["order.action"]],
                qty=Decimal(fields[at["order.totalQuantity"]]),
                order_type=fields[at["order.orderType"]],
                account=fields[at["order.account"]] or ACCOUNT,
                order_ref=fields[at["order.orderRef"]],
            )
            self.orders.append(order)  # IB never deduplicates orderRef
            kind = fault.kind if fault else "fill"
            if kind in ("fill", "hold") or (kind == "disconnect" and fault and fault.fill):
                self._fill(order, order.qty)
            elif kind == "partial":
                self._fill(order, order.qty / 2)
        if kind == "disconnect":
            conn.close()
            return
        if kind == "hold" and fault is not None:
            timer = threading.Timer(fault.hold_s, self._report, args=(conn, order))
            timer.daemon = True
            timer.start()
            return
        self._report(conn, order)

    def _fill(self, order: TwsOrder, qty: Decimal) -> None:
        exec_id = f"0000e0d5.{next(self._exec_ids):08x}.01.01"
        order.fills.append((exec_id, qty, order.instrument.price, datetime.now(UTC)))
        sign = 1 if order.action == "BUY" else -1
        con_id = order.instrument.con_id
        self.positions[con_id] = self.positions.get(con_id, Decimal(0)) + sign * qty
        if order.filled >= order.qty:
            order.status = "Filled"

    def _report(self, conn: _Conn, order: TwsOrder) -> None:
        """What TWS sends after accepting an order: openOrder and orderStatus ``Submitted``,
        then per fill execDetails and commissionReport, then the order's current status."""
        with self.lock:
            fills = list(order.fills)
            final_status = order.status
        self._send_open_order(conn, order, status="Submitted")
        self._send_status(conn, order, status="Submitted", fills=[])
        for index, fill in enumerate(fills):
            self._send_fill(conn, order, fill, req_id=-1)
            self._send_status(conn, order, status=final_status, fills=fills[: index + 1])
        if final_status != "Submitted":
            self._send_open_order(conn, order, status=final_status)

    def _cancel(self, conn: _Conn, order_id: int) -> None:
        with self.lock:
            order = next(
                (
                    o
                    for o in self.orders
                    if o.order_id == order_id and o.client_id == conn.client_id and o.is_open
                ),
                None,
            )
            if order is not None:
                order.status = "Cancelled"
        if order is None:
            self._error(conn, order_id, 10147, f"OrderId {order_id} to cancel is not found.")
            return
        self._send_status(conn, order)
        self._error(conn, order_id, 202, "Order Canceled - reason:")

    # -- outgoing messages -----------------------------------------------------------------
    def _order_values(self, order: TwsOrder, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}.orderId": order.order_id,
            f"{prefix}.action": order.action,
            f"{prefix}.totalQuantity": order.qty,
            f"{prefix}.orderType": order.order_type,
            f"{prefix}.tif": "DAY",
            f"{prefix}.account": order.account,
            f"{prefix}.orderRef": order.order_ref,
            f"{prefix}.clientId": order.client_id,
            f"{prefix}.permId": order.perm_id,
        }

    def _send_open_order(self, conn: _Conn, order: TwsOrder, status: str | None = None) -> None:
        values = self._order_values(order, "order")
        values["orderId"] = values.pop("order.orderId")
        values["orderState.status"] = status or order.status
        self._send(conn, "openOrder", **values, **order.instrument.contract_values())

    def _send_completed(self, conn: _Conn, order: TwsOrder) -> None:
        layout = self.layouts["completedOrder"]
        values = {
            k: v for k, v in self._order_values(order, "order").items() if k in layout.positions
        }
        values["orderState.status"] = order.status
        if "order.filledQuantity" in layout.positions:
            values["order.filledQuantity"] = order.filled
        self._send(conn, "completedOrder", **values, **order.instrument.contract_values())

    def _send_status(
        self,
        conn: _Conn,
        order: TwsOrder,
        status: str | None = None,
        fills: list[tuple[str, Decimal, Decimal, datetime]] | None = None,
    ) -> None:
        fills = order.fills if fills is None else fills
        filled = sum((q for _, q, _, _ in fills), Decimal(0))
        avg = sum((q * p for _, q, p, _ in fills), Decimal(0)) / filled if filled else Decimal(0)
        last = fills[-1][2] if fills else Decimal(0)
        self._send(
            conn,
            "orderStatus",
            orderId=order.order_id,
            status=status or order.status,
            filled=filled,
            remaining=order.qty - filled,
            avgFillPrice=avg,
            permId=order.perm_id,
            parentId=0,
            lastFillPrice=last,
            clientId=order.client_id,
            whyHeld="",
            mktCapPrice=0,
        )

    def _send_fill(
        self,
        conn: _Conn,
        order: TwsOrder,
        fill: tuple[str, Decimal, Decimal, datetime],
        *,
        req_id: int,
    ) -> None:
        exec_id, qty, price, ts = fill
        self._send(
            conn,
            "execDetails",
            reqId=req_id,
            **{
                "execution.orderId": order.order_id,
                "execution.execId": exec_id,
                "time": ts.strftime("%Y%m%d %H:%M:%S UTC"),
                "execution.acctNumber": order.account,
                "execution.exchange": order.instrument.exchange,
                "execution.side": "BOT" if order.action == "BUY" else "SLD",
                "execution.shares": qty,
                "execution.price": price,
                "execution.permId": order.perm_id,
                "execution.clientId": order.client_id,
                "execution.cumQty": qty,
                "execution.avgPrice": price,
                "execution.orderRef": order.order_ref,
            },
            **order.instrument.contract_values(),
        )
        self._send(
            conn,
            "commissionReport",
            **{
                "commissionReport.execId": exec_id,
                "commissionReport.commission": Decimal("1.00"),
                "commissionReport.currency": "USD",
            },
        )
