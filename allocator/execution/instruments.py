"""The symbol table: asset class, lot size, tick, minimum notional, multiplier (SPEC §7-§8).

A quantity must be a whole multiple of ``lot_size``; a price a multiple of ``tick_size``; an
order's notional (qty × price × multiplier) at least ``min_notional``. ``multiplier`` turns a
future's contract into notional (ES: 50 × index points). The bundled default table covers the
symbols of the seed and the examples; a deployment loads its own CSV.

The table only records facts about symbols, including a symbol's explicit ``venue`` when its
CSV names one. Which venue an instrument is sent to (the asset-class default of SPEC §8, the
threshold and the proxy map) is routing's decision:
:func:`allocator.execution.routing.venue_of`. Why: one place decides where an order goes.
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
    "load_instruments",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Instrument:
    """One tradable symbol; validated on construction.

    Attributes
    ----------
    symbol : str
        Non-empty: ``SPY``, ``EUR/USD``, ``BTC/USDT``, ``ES``.
    asset_class : AssetClass
        The routing key of SPEC §8.
    lot_size : Decimal
        Base units per lot, > 0; every quantity is a whole number of lots.
    tick_size : Decimal
        Quote currency per base unit, > 0: the price increment.
    min_notional : Decimal
        Quote currency, >= 0: the smallest order notional the venue accepts.
    multiplier : Decimal
        Notional per unit of price and base unit, > 0 (ES: 50).
    venue : Venue or None
        The venue the symbol table names for it; ``None``: the asset class's venue
        (:func:`~allocator.execution.routing.venue_of`).
    """

    symbol: str
    asset_class: AssetClass
    lot_size: Decimal = Decimal(1)
    tick_size: Decimal = Decimal("0.01")
    min_notional: Decimal = Decimal(0)
    multiplier: Decimal = Decimal(1)
    venue: Venue | None = None

    def __post_init__(self) -> None:
        """Check the sizes, the tick, the multiplier and the minimum notional."""
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

    def is_lot_multiple(self, qty: Decimal) -> bool:
        """Whether ``qty`` (base units) is a whole number of lots."""
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
        """Return the instrument of ``symbol``; ``KeyError`` when it is not listed."""
        return self._by_symbol[symbol]

    def __iter__(self) -> Iterator[str]:
        """Iterate over the symbols in table order."""
        return iter(self._by_symbol)

    def __len__(self) -> int:
        """Return the number of symbols."""
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
