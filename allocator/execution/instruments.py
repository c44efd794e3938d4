"""The symbol table: asset class, venue, lot size, tick, minimum notional, multiplier (SPEC §7-§8).

A quantity must be a whole multiple of ``lot_size``; a price a multiple of ``tick_size``; an
order's notional (qty × price × multiplier) at least ``min_notional``. ``multiplier`` turns a
future's contract into notional (ES: 50 × index points). The bundled default table covers the
symbols of the seed and the examples; a deployment loads its own CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from allocator.errors import InputError
from allocator.execution.orders import AssetClass, Venue

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "Instrument",
    "InstrumentTable",
    "default_venue",
    "load_instruments",
]

_VENUE_OF_CLASS = {
    AssetClass.EQUITY: Venue.ALPACA,
    AssetClass.ETF: Venue.ALPACA,
    AssetClass.OPTION: Venue.ALPACA,
    AssetClass.FUTURE: Venue.IBKR,
    AssetClass.FOREX: Venue.IBKR,
    AssetClass.CRYPTO: Venue.CCXT,
}


def default_venue(asset_class: AssetClass) -> Venue:
    """The venue of SPEC §8 for an asset class."""
    return _VENUE_OF_CLASS[asset_class]


@dataclass(frozen=True, kw_only=True, slots=True)
class Instrument:
    """One tradable symbol. ``lot_size`` and ``tick_size`` are > 0 (base units, quote
    currency); ``min_notional`` >= 0 (quote currency); ``multiplier`` > 0."""

    symbol: str
    asset_class: AssetClass
    lot_size: Decimal = Decimal(1)
    tick_size: Decimal = Decimal("0.01")
    min_notional: Decimal = Decimal(0)
    multiplier: Decimal = Decimal(1)
    venue: Venue | None = None

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("instrument symbol must not be empty")
        for name in ("lot_size", "tick_size", "multiplier"):
            value = getattr(self, name)
            if not value.is_finite() or value <= 0:
                raise ValueError(f"instrument {self.symbol}: {name} must be > 0, got {value}")
        if not self.min_notional.is_finite() or self.min_notional < 0:
            raise ValueError(
                f"instrument {self.symbol}: min_notional must be >= 0, got {self.min_notional}"
            )
        if self.venue is None:
            object.__setattr__(self, "venue", default_venue(self.asset_class))

    @property
    def routed_venue(self) -> Venue:
        return self.venue if self.venue is not None else default_venue(self.asset_class)

    def is_lot_multiple(self, qty: Decimal) -> bool:
        return (qty % self.lot_size) == 0


class InstrumentTable(Mapping[str, Instrument]):
    """An immutable symbol -> :class:`Instrument` table."""

    __slots__ = ("_by_symbol",)

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        by_symbol: dict[str, Instrument] = {}
        for item in instruments:
            if item.symbol in by_symbol:
                raise ValueError(f"instrument {item.symbol} is listed twice")
            by_symbol[item.symbol] = item
        self._by_symbol = by_symbol

    def __getitem__(self, symbol: str) -> Instrument:
        return self._by_symbol[symbol]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_symbol)

    def __len__(self) -> int:
        return len(self._by_symbol)


def _inst(
    symbol: str, cls: AssetClass, lot: str, tick: str, min_notional: str, mult: str = "1"
) -> Instrument:
    return Instrument(
        symbol=symbol,
        asset_class=cls,
        lot_size=Decimal(lot),
        tick_size=Decimal(tick),
        min_notional=Decimal(min_notional),
        multiplier=Decimal(mult),
    )


DEFAULT_INSTRUMENTS = InstrumentTable(
    [
        _inst("SPY", AssetClass.ETF, "1", "0.01", "1"),
        _inst("QQQ", AssetClass.ETF, "1", "0.01", "1"),
        _inst("IWM", AssetClass.ETF, "1", "0.01", "1"),
        _inst("TLT", AssetClass.ETF, "1", "0.01", "1"),
        _inst("GLD", AssetClass.ETF, "1", "0.01", "1"),
        _inst("KO", AssetClass.EQUITY, "1", "0.01", "1"),
        _inst("PEP", AssetClass.EQUITY, "1", "0.01", "1"),
        _inst("AAPL", AssetClass.EQUITY, "1", "0.01", "1"),
        _inst("MSFT", AssetClass.EQUITY, "1", "0.01", "1"),
        _inst("XOM", AssetClass.EQUITY, "1", "0.01", "1"),
        _inst("CVX", AssetClass.EQUITY, "1", "0.01", "1"),
        _inst("ES", AssetClass.FUTURE, "1", "0.25", "0", "50"),
        _inst("NQ", AssetClass.FUTURE, "1", "0.25", "0", "20"),
        _inst("CL", AssetClass.FUTURE, "1", "0.01", "0", "1000"),
        _inst("EUR/USD", AssetClass.FOREX, "1000", "0.00005", "0"),
        _inst("GBP/USD", AssetClass.FOREX, "1000", "0.00005", "0"),
        _inst("BTC/USDT", AssetClass.CRYPTO, "0.00001", "0.01", "5"),
        _inst("ETH/USDT", AssetClass.CRYPTO, "0.0001", "0.01", "5"),
        _inst("SOL/USDT", AssetClass.CRYPTO, "0.001", "0.01", "5"),
    ]
)

_REQUIRED = ("symbol", "asset_class")
_OPTIONAL_DECIMALS = ("lot_size", "tick_size", "min_notional", "multiplier")


def load_instruments(path: str | Path) -> InstrumentTable:
    """Read a CSV ``symbol,asset_class[,lot_size,tick_size,min_notional,multiplier,venue]``.

    Missing optional columns take the defaults of :class:`Instrument`. A bad row raises
    :class:`InputError` naming the file, the row and the problem.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(source, None, f"cannot read: {exc.strerror}") from exc
    items: list[Instrument] = []
    seen: set[str] = set()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise InputError(source, None, f"missing column(s) {', '.join(missing)}")
    for row_no, row in enumerate(reader, start=1):
        symbol = (row.get("symbol") or "").strip()
        if not symbol:
            raise InputError(source, row_no, "empty symbol")
        if symbol in seen:
            raise InputError(source, row_no, f"symbol {symbol} is listed twice")
        seen.add(symbol)
        try:
            cls = AssetClass((row.get("asset_class") or "").strip())
        except ValueError:
            raise InputError(
                source, row_no, f"unknown asset_class {row.get('asset_class')!r}"
            ) from None
        kwargs: dict[str, Decimal] = {}
        for name in _OPTIONAL_DECIMALS:
            text = (row.get(name) or "").strip()
            if not text:
                continue
            try:
                kwargs[name] = Decimal(text)
            except InvalidOperation:
                raise InputError(source, row_no, f"{name} {text!r} is not a number") from None
        venue_text = (row.get("venue") or "").strip()
        try:
            venue = Venue(venue_text) if venue_text else None
            items.append(Instrument(symbol=symbol, asset_class=cls, venue=venue, **kwargs))
        except ValueError as exc:
            raise InputError(source, row_no, str(exc)) from None
    return InstrumentTable(items)
