"""The bar's reference price per symbol (SPEC §7) behind one interface.

A :class:`PriceSource` answers ``price(symbol) -> (price, timestamp)`` or ``None``. ``None``
means the symbol has no usable price for this bar (missing, stale beyond ``max_age``, or the
source failed): the caller refuses that symbol's intents with reason ``no_price``. Sources:
the bar's own data (the paper default), Alpaca's latest trade, a ccxt ticker, an IB snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AlpacaPriceSource",
    "BarPriceSource",
    "CcxtPriceSource",
    "IbPriceSource",
    "PriceSource",
    "fresh",
]

_log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@runtime_checkable
class PriceSource(Protocol):
    def price(self, symbol: str) -> tuple[Decimal, datetime] | None:
        """The latest price and its UTC time, or ``None`` when missing or stale."""
        ...


def fresh(
    symbol: str, price: Any, ts: datetime | None, *, max_age: timedelta, now: datetime
) -> tuple[Decimal, datetime] | None:
    """``(price, ts)`` when it is a positive number no older than ``max_age``, else ``None``."""
    if price is None or ts is None:
        _log.info("%s: no price", symbol)
        return None
    value = Decimal(str(price))
    if not value.is_finite() or value <= 0:
        _log.info("%s: unusable price %s", symbol, price)
        return None
    if ts.tzinfo is None:
        raise ValueError(f"{symbol}: price timestamp {ts} has no time zone")
    if now - ts > max_age:
        _log.info("%s: price from %s is older than %s", symbol, ts.isoformat(), max_age)
        return None
    return value, ts


class BarPriceSource:
    """The paper default: the prices of the bar the strategies run on."""

    def __init__(
        self,
        prices: Mapping[str, tuple[Decimal, datetime]],
        *,
        max_age: timedelta = timedelta(days=7),
        clock: Clock = _utcnow,
    ) -> None:
        self._prices = dict(prices)
        self._max_age = max_age
        self._clock = clock

    def price(self, symbol: str) -> tuple[Decimal, datetime] | None:
        got = self._prices.get(symbol)
        if got is None:
            return None
        return fresh(symbol, got[0], got[1], max_age=self._max_age, now=self._clock())


class CcxtPriceSource:
    """A ccxt exchange's ticker: ``last`` at the ticker's timestamp."""

    def __init__(
        self, exchange: Any, *, max_age: timedelta = timedelta(minutes=5), clock: Clock = _utcnow
    ) -> None:
        self._exchange = exchange
        self._max_age = max_age
        self._clock = clock

    def price(self, symbol: str) -> tuple[Decimal, datetime] | None:
        import ccxt

        try:
            ticker = self._exchange.fetch_ticker(symbol)
        except ccxt.BaseError as exc:
            _log.warning("%s: ticker failed: %s", symbol, exc)
            return None
        ms = ticker.get("timestamp")
        ts = datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None
        return fresh(symbol, ticker.get("last"), ts, max_age=self._max_age, now=self._clock())


class AlpacaPriceSource:
    """Alpaca's latest trade (alpaca-py ``StockHistoricalDataClient``), with a timeout."""

    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        url_override: str | None = None,
        timeout_s: float = 10.0,
        max_age: timedelta = timedelta(minutes=15),
        clock: Clock = _utcnow,
    ) -> None:
        from alpaca.data.historical import StockHistoricalDataClient

        from resources.brokers.alpaca.client import _TimeoutSession

        self._client = StockHistoricalDataClient(api_key, secret_key, url_override=url_override)
        self._client._session = _TimeoutSession(timeout_s)
        self._client._retry = 0
        self._max_age = max_age
        self._clock = clock

    def price(self, symbol: str) -> tuple[Decimal, datetime] | None:
        import requests
        from alpaca.common.exceptions import APIError
        from alpaca.data.requests import StockLatestTradeRequest

        try:
            trades = self._client.get_stock_latest_trade(
                StockLatestTradeRequest(symbol_or_symbols=symbol)
            )
        except (APIError, requests.RequestException) as exc:
            _log.warning("%s: latest trade failed: %s", symbol, exc)
            return None
        trade = trades.get(symbol)
        if trade is None:
            return None
        return fresh(symbol, trade.price, trade.timestamp, max_age=self._max_age, now=self._clock())


class IbPriceSource:
    """An IB snapshot (``reqTickers``) through a connected ib_async ``IB`` on its own loop.

    ``run`` executes a coroutine on the IB connection's event loop with a timeout (see
    :class:`resources.brokers.ibkr.client.IbkrBroker.run`); ``contract_of`` maps a symbol to
    a qualified contract.
    """

    def __init__(
        self,
        ib: Any,
        run: Callable[..., Any],
        contract_of: Callable[[str], Any],
        *,
        max_age: timedelta = timedelta(minutes=15),
        clock: Clock = _utcnow,
    ) -> None:
        self._ib = ib
        self._run = run
        self._contract_of = contract_of
        self._max_age = max_age
        self._clock = clock

    def price(self, symbol: str) -> tuple[Decimal, datetime] | None:
        try:
            contract = self._contract_of(symbol)
            tickers = self._run(self._ib.reqTickersAsync(contract))
        except Exception as exc:
            _log.warning("%s: IB snapshot failed: %s", symbol, exc)
            return None
        if not tickers:
            return None
        ticker = tickers[0]
        value = ticker.marketPrice()
        if value != value:  # NaN: no market data
            return None
        return fresh(symbol, value, ticker.time, max_age=self._max_age, now=self._clock())
