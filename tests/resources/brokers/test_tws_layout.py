"""The fake TWS's message layouts are ib_async's own: derived from its Decoder, pinned here.

``tests.fakes.fake_tws`` builds every message it sends from layouts probed out of
``ib_async.decoder.Decoder`` and reads placeOrder at the positions ``Client.placeOrder`` writes.
This test pins those positions for ib_async 2.1.0 (server version 178): an upgrade that moves a
field fails here first, before any order test, and the messages the fake encodes must decode
back through ib_async's real Decoder to the values it meant.
"""

from __future__ import annotations

from typing import Any

import ib_async
import pytest
from ib_async.client import Client
from ib_async.decoder import Decoder

from tests.fakes.fake_tws import OUT, SERVER_VERSION, derive_layouts, derive_place_order_layout

LAYOUTS = derive_layouts()

PINNED: dict[str, dict[str, int]] = {
    "openOrder": {"orderId": 1, "contract.conId": 2, "contract.symbol": 3,
                  "contract.secType": 4, "order.action": 13, "order.totalQuantity": 14,
                  "order.orderType": 15, "order.account": 20, "order.orderRef": 23,
                  "order.clientId": 24, "order.permId": 25, "orderState.status": 85},
    "orderStatus": {"orderId": 1, "status": 2, "filled": 3, "remaining": 4,
                    "avgFillPrice": 5, "permId": 6, "clientId": 9},
    "execDetails": {"reqId": 1, "execution.orderId": 2, "contract.conId": 3,
                    "execution.execId": 14, "time": 15, "execution.side": 18,
                    "execution.shares": 19, "execution.price": 20, "execution.permId": 21,
                    "execution.orderRef": 26},
    "commissionReport": {"commissionReport.execId": 2, "commissionReport.commission": 3,
                         "commissionReport.currency": 4},
    "position": {"account": 2, "contract.conId": 3, "contract.symbol": 4, "posSize": 14,
                 "avgCost": 15},
    "completedOrder": {"contract.conId": 1, "order.orderRef": 22, "order.permId": 23,
                       "orderState.status": 72, "order.filledQuantity": 82},
    "errorMsg": {"reqId": 2, "errorCode": 3, "errorString": 4},
    "contractDetails": {"reqId": 1, "contractDetails.contract.symbol": 2,
                        "contractDetails.contract.conId": 12, "contractDetails.minTick": 13,
                        "contractDetails.minSize": 37, "contractDetails.sizeIncrement": 38},
    "nextValidId": {"reqId": 2},
    "managedAccounts": {"accountsList": 2},
    "execDetailsEnd": {"reqId": 2},
    "accountUpdateMultiEnd": {"reqId": 2},
}  # fmt: skip

LENGTHS = {"openOrder": 127, "execDetails": 32, "commissionReport": 8, "position": 16,
           "completedOrder": 96, "orderStatus": 12, "positionEnd": 2, "openOrderEnd": 2,
           "completedOrdersEnd": 1, "accountDownloadEnd": 3, "accountUpdateMultiEnd": 3,
           "execDetailsEnd": 3}  # fmt: skip


def test_versions_the_layouts_were_pinned_for() -> None:
    assert ib_async.__version__ == "2.1.0"
    assert (Client.MinClientVersion, Client.MaxClientVersion) == (157, 178)
    assert SERVER_VERSION == 178


def test_every_message_the_fake_sends_has_that_decoder_handler() -> None:
    import inspect

    handlers = Decoder(None, SERVER_VERSION).handlers  # type: ignore[arg-type]
    for name, msg_id in OUT.items():
        handler = handlers[msg_id]
        method = inspect.getclosurevars(handler).nonlocals.get("methodName", handler.__name__)
        assert method == {"errorMsg": "errorMsg"}.get(name, name), (name, msg_id)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_derived_positions_are_the_pinned_ones(name: str) -> None:
    positions = LAYOUTS[name].positions
    assert {k: positions.get(k) for k in PINNED[name]} == PINNED[name]


@pytest.mark.parametrize("name", sorted(LENGTHS))
def test_derived_lengths_are_the_pinned_ones(name: str) -> None:
    assert LAYOUTS[name].length == LENGTHS[name]


def test_place_order_carries_order_ref_at_field_26() -> None:
    at = derive_place_order_layout()
    assert at["orderId"] == 1
    assert at["contract.symbol"] == 3
    assert (at["order.action"], at["order.totalQuantity"], at["order.orderType"]) == (16, 17, 18)
    assert at["order.account"] == 23
    assert at["order.orderRef"] == 26


class _Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


def test_encoded_messages_decode_back_through_ib_async() -> None:
    sink = _Sink()
    decoder = Decoder(sink, SERVER_VERSION)  # type: ignore[arg-type]
    open_order = LAYOUTS["openOrder"].encode(
        {"orderId": 5, "order.orderRef": "f" * 32, "order.action": "BUY",
         "order.totalQuantity": 3, "order.permId": 99, "order.clientId": 7,
         "orderState.status": "Submitted", "contract.symbol": "SPY", "contract.conId": 1}
    )  # fmt: skip
    decoder.interpret(open_order)
    ((method, (order_id, contract, order, state)),) = sink.calls
    assert (method, order_id, contract.symbol, order.orderRef) == ("openOrder", 5, "SPY", "f" * 32)
    assert (order.totalQuantity, order.permId, order.clientId, state.status) == (
        3.0, 99, 7, "Submitted",
    )  # fmt: skip
    sink.calls.clear()
    decoder.interpret(
        LAYOUTS["commissionReport"].encode(
            {"commissionReport.execId": "x.1", "commissionReport.commission": "1.5"}
        )
    )
    ((_, (report,)),) = sink.calls
    assert (report.execId, report.commission) == ("x.1", 1.5)
