"""A bar's reference prices: one ``symbol,price`` file per bar, read strictly (SPEC §7).

SPEC §7 gives each bar one reference price per symbol (its last price from the market-data
source); gating values gross notional with it and the paper broker fills at it. Every reader
and writer of those prices goes through this module: ``allocator net --prices``, the
pipeline's ``PricesResource`` (and through it the dashboard), and the demo, which writes one
file per bar.

* :func:`read_prices` reads one file (CSV with a ``symbol,price`` header, or JSON lines)
  strictly: a missing column, an empty field, a price that is not a finite number > 0 or a
  symbol listed twice is an :class:`~allocator.errors.InputError` naming the file and the row.
* :func:`price_file` resolves a location to the bar's file: a folder holds ``<bar>.csv`` per
  bar (the bar key without ``:``, so an intraday key is a valid file name); a file is the
  prices of every bar.
* :func:`bar_prices` is what the pipeline reads: no location, or no file for this bar, means
  "no prices" (an empty mapping: every entry in the bar is then refused ``no_price``); a file
  that exists is read strictly.
* :func:`write_prices` writes one file atomically (a reader never sees half a file).
* :func:`read_price_times` and :func:`bar_price_times` read the file's optional ``as_of``
  column: when each price was taken (an ISO-8601 instant with a zone), which the risk stage's
  price collar checks against ``[risk] max_price_age_s`` (docs/spec-12-risk.md); an empty
  field means no known time.

Why a malformed price fails the read instead of being skipped: a skipped row would look
exactly like a symbol the source has no price for, and the bar would refuse or mis-value that
symbol's intents without anyone being told. A missing file is different: it is how a location
says it has nothing for a bar, and the bar then trades nothing new (entries refused
``no_price``) rather than at a guessed price.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from allocator.errors import InputError
from allocator.execution.inbox import read_rows

__all__ = [
    "PRICE_COLUMNS",
    "bar_price_times",
    "bar_prices",
    "price_file",
    "read_price_times",
    "read_prices",
    "write_prices",
]

PRICE_COLUMNS = ("symbol", "price")


def read_prices(path: str | Path) -> dict[str, Decimal]:
    """Read a ``symbol,price`` file (CSV or JSON lines) into reference prices.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    dict of str to Decimal
        Quote currency per base unit, > 0, per symbol.

    Raises
    ------
    InputError
        The file cannot be read or lacks a column (``row`` is ``None``), or a row has an empty
        field, a price that is not a finite number > 0, or a symbol listed earlier.
    """
    source = str(path)
    prices: dict[str, Decimal] = {}
    for number, row in read_rows(path, PRICE_COLUMNS):
        for column in PRICE_COLUMNS:
            if not (row.get(column) or "").strip():
                raise InputError(source, number, f"missing {column}")
        symbol = row["symbol"].strip()
        text = row["price"]
        try:
            price = Decimal(text.strip())
        except InvalidOperation:
            raise InputError(source, number, f"price {text!r} is not a number") from None
        if not price.is_finite():
            raise InputError(source, number, f"price {text!r} is not finite")
        if price <= 0:
            raise InputError(source, number, f"price {text!r} must be > 0")
        if symbol in prices:
            raise InputError(source, number, f"symbol {symbol} is listed twice")
        prices[symbol] = price
    return prices


def read_price_times(path: str | Path) -> dict[str, datetime]:
    """Read the optional ``as_of`` column of a prices file: when each price was taken (UTC).

    Raises
    ------
    InputError
        An ``as_of`` that is not an ISO-8601 instant with a timezone (naming the row).
    """
    source = str(path)
    times: dict[str, datetime] = {}
    for number, row in read_rows(path, PRICE_COLUMNS):
        text = (row.get("as_of") or "").strip()
        if not text:
            continue
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InputError(
                source, number, f"as_of {text[:40]!r} is not an ISO-8601 instant"
            ) from None
        if moment.tzinfo is None:
            raise InputError(source, number, f"as_of {text!r} has no timezone (write it in UTC)")
        times[(row.get("symbol") or "").strip()] = moment.astimezone(UTC)
    return times


def bar_price_times(location: str | Path | None, bar_key: str) -> dict[str, datetime]:
    """Read bar ``bar_key``'s price times from a file-or-folder ``location`` (none: empty)."""
    if location is None or str(location) == "":
        return {}
    path = price_file(location, bar_key)
    if not path.is_file():
        return {}
    return read_price_times(path)


def price_file(location: str | Path, bar_key: str) -> Path:
    """Return the file that holds bar ``bar_key``'s prices at ``location``.

    A folder holds one ``<bar>.csv`` per bar (``bar_key`` without its ``:``); any other
    location is itself the file.
    """
    path = Path(location)
    if path.is_dir():
        return path / f"{bar_key.replace(':', '')}.csv"
    return path


def bar_prices(location: str | Path | None, bar_key: str) -> dict[str, Decimal]:
    """Read bar ``bar_key``'s prices from a file-or-folder ``location``.

    No location (``None`` or ``""``) or no file for the bar gives no prices (an empty
    mapping); a file that exists is read with :func:`read_prices` and fails the same way.
    """
    if location is None or str(location) == "":
        return {}
    path = price_file(location, bar_key)
    if not path.is_file():
        return {}
    return read_prices(path)


def write_prices(path: str | Path, prices: Mapping[str, Decimal]) -> None:
    """Write ``prices`` as a ``symbol,price`` CSV, replacing ``path`` in one step."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(PRICE_COLUMNS)
        writer.writerows((symbol, str(price)) for symbol, price in prices.items())
    os.replace(tmp, target)
