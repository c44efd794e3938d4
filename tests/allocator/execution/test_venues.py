"""Where an order goes: routing's one venue choice (SPEC §8); the symbol table only records."""

from __future__ import annotations

from decimal import Decimal

import pytest

from allocator.execution import DEFAULT_INSTRUMENTS, Instrument
from allocator.execution.orders import AssetClass, Venue
from allocator.execution.routing import default_venue, venue_of


@pytest.mark.parametrize(
    ("asset_class", "venue"),
    [
        (AssetClass.EQUITY, Venue.ALPACA),
        (AssetClass.ETF, Venue.ALPACA),
        (AssetClass.OPTION, Venue.ALPACA),
        (AssetClass.FUTURE, Venue.IBKR),
        (AssetClass.FOREX, Venue.IBKR),
        (AssetClass.CRYPTO, Venue.CCXT),
    ],
)
def test_the_asset_class_decides_unless_the_table_names_a_venue(
    asset_class: AssetClass, venue: Venue
) -> None:
    assert default_venue(asset_class) is venue
    plain = Instrument(symbol="X", asset_class=asset_class, lot_size=Decimal(1))
    assert plain.venue is None  # the table records no choice of its own
    assert venue_of(plain) is venue
    pinned = Instrument(symbol="X", asset_class=asset_class, venue=Venue.IBKR)
    assert venue_of(pinned) is Venue.IBKR


def test_the_bundled_table() -> None:
    assert venue_of(DEFAULT_INSTRUMENTS["SPY"]) is Venue.ALPACA
    assert venue_of(DEFAULT_INSTRUMENTS["ES"]) is Venue.IBKR
    assert venue_of(DEFAULT_INSTRUMENTS["BTC/USDT"]) is Venue.CCXT
