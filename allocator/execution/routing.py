"""Routing by asset class, the multi-broker threshold and the proxy map (SPEC §8).

This module is the one place that decides where an order goes: :func:`venue_of` gives an
instrument's venue (the symbol table's explicit ``venue``, else the asset class's venue of
SPEC §8: equities, ETFs and options to Alpaca, futures and forex to Interactive Brokers, crypto
to ccxt), and :func:`route_intents` applies the threshold and the proxy map. Why here and not
in the symbol table: the table records facts about symbols; the choice of a venue is a rule.

:func:`route_intents` is also where an intent is checked against the symbol table: an unknown
symbol is refused ``unknown_symbol``; an asset class that contradicts the table, a zero
quantity or one that is not a whole number of lots is refused ``invalid``. Below
``multi_broker_threshold`` of total capital a future or forex intent is mapped through the
proxy map at equal notional (qty × multiplier × price ÷ proxy price, rounded toward zero to the
proxy's lot), or refused ``routing`` when its symbol has no proxy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from allocator.config import RoutingConfig
from allocator.execution.instruments import Instrument, InstrumentTable
from allocator.execution.orders import AssetClass, Venue
from allocator.execution.reasons import Reason
from allocator.execution.records import GatedIntent, Intent

__all__ = ["RoutedIntent", "default_venue", "route_intents", "venue_of"]

_VENUE_OF_CLASS = {
    AssetClass.EQUITY: Venue.ALPACA,
    AssetClass.ETF: Venue.ALPACA,
    AssetClass.OPTION: Venue.ALPACA,
    AssetClass.FUTURE: Venue.IBKR,
    AssetClass.FOREX: Venue.IBKR,
    AssetClass.CRYPTO: Venue.CCXT,
}


def default_venue(asset_class: AssetClass) -> Venue:
    """Return the venue of SPEC §8 for an asset class."""
    return _VENUE_OF_CLASS[asset_class]


def venue_of(instrument: Instrument) -> Venue:
    """Return the venue an instrument's orders go to: its table ``venue``, else its class's."""
    venue = instrument.venue
    return venue if venue is not None else _VENUE_OF_CLASS[instrument.asset_class]


@dataclass(frozen=True, kw_only=True, slots=True)
class RoutedIntent:
    """An intent that passed the symbol checks, in the symbol it will trade.

    Attributes
    ----------
    intent : Intent
        The intent as submitted.
    symbol : str
        The symbol traded: the intent's own, or its proxy's.
    qty : Decimal
        Signed base units of ``symbol``, + buys (a proxy's at equal notional, whole lots).
    instrument : Instrument
        The table's row for ``symbol``.
    venue : Venue
        Where its orders go (:func:`venue_of`).
    routed_from : str or None
        The intent's own symbol when it was mapped to a proxy.
    """

    intent: Intent
    symbol: str
    qty: Decimal
    instrument: Instrument
    venue: Venue
    routed_from: str | None = None


def _refuse(intent: Intent, reason: Reason, detail: str) -> GatedIntent:
    return GatedIntent(
        intent_id=intent.intent_id,
        strategy=intent.strategy,
        symbol=intent.symbol,
        requested_qty=intent.qty,
        accepted_qty=Decimal(0),
        reason=reason,
        detail=detail,
    )


def route_intents(
    intents: Iterable[Intent],
    *,
    instruments: InstrumentTable,
    prices: Mapping[str, Decimal],
    total_capital: Decimal,
    routing: RoutingConfig,
) -> tuple[list[RoutedIntent], list[GatedIntent]]:
    """Check each intent against the table and route it; return (routed, refused)."""
    use_ibkr = total_capital >= routing.multi_broker_threshold
    routed: list[RoutedIntent] = []
    refused: list[GatedIntent] = []
    for intent in intents:
        inst = instruments.get(intent.symbol)
        if inst is None:
            refused.append(_refuse(intent, Reason.UNKNOWN_SYMBOL, f"{intent.symbol} not listed"))
            continue
        if inst.asset_class != intent.asset_class:
            refused.append(
                _refuse(
                    intent,
                    Reason.INVALID,
                    f"asset_class {intent.asset_class} but {intent.symbol} is {inst.asset_class}",
                )
            )
            continue
        if intent.qty == 0 or not inst.is_lot_multiple(intent.qty):
            refused.append(
                _refuse(
                    intent,
                    Reason.INVALID,
                    f"qty {intent.qty} is not a non-zero multiple of lot {inst.lot_size}",
                )
            )
            continue
        venue = venue_of(inst)
        if venue is not Venue.IBKR or use_ibkr:
            routed.append(
                RoutedIntent(
                    intent=intent,
                    symbol=intent.symbol,
                    qty=intent.qty,
                    instrument=inst,
                    venue=venue,
                )
            )
            continue
        proxy_symbol = routing.proxy_map.get(intent.symbol)
        proxy = instruments.get(proxy_symbol) if proxy_symbol is not None else None
        if proxy_symbol is None or proxy is None:
            refused.append(
                _refuse(
                    intent,
                    Reason.ROUTING,
                    f"{intent.symbol} needs Interactive Brokers, unused below "
                    f"{routing.multi_broker_threshold} of capital, and has no usable proxy",
                )
            )
            continue
        price, proxy_price = prices.get(intent.symbol), prices.get(proxy.symbol)
        if price is None or proxy_price is None:
            missing = intent.symbol if price is None else proxy.symbol
            refused.append(
                _refuse(intent, Reason.NO_PRICE, f"no reference price for {missing} (proxy map)")
            )
            continue
        ratio = (Fraction(intent.qty) * Fraction(inst.multiplier) * Fraction(price)) / (
            Fraction(proxy_price) * Fraction(proxy.lot_size)
        )
        lots = math.trunc(ratio)
        if lots == 0:
            refused.append(
                _refuse(
                    intent,
                    Reason.ROUTING,
                    f"{intent.qty} {intent.symbol} is less than one lot of proxy {proxy.symbol}",
                )
            )
            continue
        routed.append(
            RoutedIntent(
                intent=intent,
                symbol=proxy.symbol,
                qty=lots * proxy.lot_size,
                instrument=proxy,
                venue=venue_of(proxy),
                routed_from=intent.symbol,
            )
        )
    return routed, refused
