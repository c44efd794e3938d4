"""What of the IB adapter runs without a TWS: symbol mapping and the unreachable-gateway path.

The fake TWS socket server and the contract run against it are not written yet (see the
issue #5 report); these tests do not prove the order lifecycle over the socket.
"""

from __future__ import annotations

import socket

import pytest

from allocator.errors import AmbiguousBrokerError
from allocator.execution.orders import AssetClass
from resources.brokers.ibkr import IbkrBroker
from resources.brokers.ibkr.mapping import contract_for, position_key


def test_symbols_map_to_ib_contracts() -> None:
    stock = contract_for("SPY", AssetClass.ETF)
    assert (stock.symbol, stock.exchange, stock.currency, stock.secType) == (
        "SPY",
        "SMART",
        "USD",
        "STK",
    )
    fx = contract_for("EUR/USD", AssetClass.FOREX)
    assert (fx.symbol, fx.currency, fx.secType) == ("EUR", "USD", "CASH")
    assert position_key(fx) == "EUR/USD"
    fut = contract_for("ES:202506:CME", AssetClass.FUTURE)
    assert (fut.symbol, fut.lastTradeDateOrContractMonth, fut.exchange) == ("ES", "202506", "CME")
    with pytest.raises(ValueError, match=r"IB forex symbol must look like EUR/USD"):
        contract_for("EURUSD", AssetClass.FOREX)
    with pytest.raises(ValueError, match=r"does not trade crypto"):
        contract_for("BTC/USDT", AssetClass.CRYPTO)


def test_unreachable_gateway_is_ambiguous_not_a_crash() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    broker = IbkrBroker(port=port, timeout_s=0.5)
    try:
        with pytest.raises(AmbiguousBrokerError, match=r"ibkr: connection lost"):
            broker.lookup("SPY", "a" * 32)
    finally:
        broker.close()
