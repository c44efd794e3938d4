"""The intent and returns inbox: check submitted rows one by one and keep the valid ones.

A file (CSV with a header, or JSON lines) is read into rows; each row is checked on its own
and a bad row is refused with a reason and a detail naming the file and the row, while the
valid rows of the same file are kept: no value, however hostile, raises past a row. Every
refusal carries a :class:`~allocator.execution.reasons.Reason`. Intent reasons: ``invalid`` (a
missing or non-numeric field, a zero quantity, a quantity that is not finite, has more than
:data:`MAX_QTY_DIGITS` significant digits or decimal places, or is more than
``max_intent_qty`` lots, an unparsable bar, a text field that is too long for the ledger or
not printable), ``unknown_strategy``,
``unknown_asset_class``, ``unknown_symbol``, ``stale_bar`` (the bar ended more than
``bar_tolerance`` bars ago), ``duplicate`` (the same id twice with different content). Returns
reasons: ``invalid`` (also a return that is not a finite number, a field too long),
``duplicate`` (the same (date, strategy) twice in one file). The ledger
adds ``conflict`` (an id already stored with different content) and ``restated`` (a return
already stored with a different value, not marked as a correction).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Context, Decimal, InvalidOperation
from pathlib import Path

from allocator.errors import InputError
from allocator.execution.instruments import InstrumentTable
from allocator.execution.orders import AssetClass
from allocator.execution.reasons import Reason
from allocator.execution.records import Bar, Intent, parse_bar

__all__ = [
    "DEFAULT_MAX_INTENT_QTY",
    "INTENT_COLUMNS",
    "MAX_QTY_DIGITS",
    "MAX_TEXT",
    "RETURN_COLUMNS",
    "ReturnRow",
    "RowRefusal",
    "check_intents",
    "check_returns",
    "read_rows",
]

INTENT_COLUMNS = ("intent_id", "strategy", "symbol", "asset_class", "qty", "bar")
RETURN_COLUMNS = ("date", "strategy", "return")

MAX_QTY_DIGITS = 18
"""Most significant digits, and most decimal places, of an intent's quantity."""
DEFAULT_MAX_INTENT_QTY = 10**12
"""``[execution] max_intent_qty``'s default: the largest ``|qty|`` in lots."""
MAX_TEXT = {"intent_id": 200, "strategy": 200, "symbol": 64}
"""Longest text per field: the ledger's column widths (``String(200)``, ``String(64)``)."""
_MAX_NUMBER_TEXT = 100  # a number's text beyond this is refused before it is parsed
_WIDE = Context(prec=200)  # exact for any |qty| / lot the checks compare (18 digits each)


def _show(text: str, limit: int = 40) -> str:
    """``repr`` of ``text``, cut to ``limit`` characters (a 10 MB field is not echoed)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _text_problem(name: str, value: str, limit: int) -> str:
    """Why ``value`` cannot be stored as ``name`` (empty: it can)."""
    if len(value) > limit:
        return f"{name} {_show(value)} is longer than {limit} characters"
    if not value.isprintable():
        return f"{name} {_show(value)} has a control or non-text character"
    return ""


def _qty_problem(text: str, qty: Decimal, lot_size: Decimal | None, max_lots: int) -> str:
    """Why ``qty`` is not a usable quantity (empty: it is); ``qty`` is finite and non-zero."""
    _, digits, exponent = qty.as_tuple()
    assert isinstance(exponent, int)
    kept = list(digits)
    while len(kept) > 1 and kept[-1] == 0:  # trailing zeros are not significant
        kept.pop()
        exponent += 1
    if len(kept) > MAX_QTY_DIGITS:
        return f"qty {_show(text)} has more than {MAX_QTY_DIGITS} significant digits"
    if exponent < -MAX_QTY_DIGITS:
        return f"qty {_show(text)} has more than {MAX_QTY_DIGITS} decimal places"
    if len(kept) + exponent > 40:  # |qty| >= 10**40: more lots than any limit, whatever the lot
        return f"qty {_show(text)} is more than max_intent_qty = {max_lots} lots"
    lots = _WIDE.divide(abs(qty), lot_size) if lot_size is not None else abs(qty)
    if lots > max_lots:
        return f"qty {_show(text)} is more than max_intent_qty = {max_lots} lots"
    return ""


@dataclass(frozen=True, kw_only=True, slots=True)
class RowRefusal:
    """One refused row of a submitted file.

    Attributes
    ----------
    source : str
        The file (or other source) the row came from.
    row : int
        1-based among the data rows (the header is not counted).
    key : str
        The intent id, or ``date/strategy`` for a return; empty when the row has none.
    reason : Reason
        Why it was refused (a reason's name given as text is converted).
    detail : str
        What is wrong, for a person.
    """

    source: str
    row: int
    key: str
    reason: Reason
    detail: str

    def __post_init__(self) -> None:
        """Convert a reason given by its name (``"conflict"``) to the :class:`Reason`."""
        if not isinstance(self.reason, Reason):
            object.__setattr__(self, "reason", Reason(self.reason))

    def __str__(self) -> str:
        """Return ``source: row N: key: reason: detail``."""
        return f"{self.source}: row {self.row}: {self.key or '?'}: {self.reason}: {self.detail}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReturnRow:
    """A strategy's simple daily return (``None``: missing) for ``date``."""

    date: str
    strategy: str
    value: float | None


def read_rows(path: str | Path, columns: Collection[str]) -> list[tuple[int, dict[str, str]]]:
    """Read CSV (with a header) or JSON lines into (row number, row) pairs.

    JSON lines are recognised by a ``.jsonl``/``.ndjson``/``.json`` suffix or a first
    non-blank character ``{``. A missing column (CSV) is an :class:`InputError` for the file;
    a JSON line that is not an object is a row with no fields (refused later as ``invalid``).
    A JSON number keeps its text (``1e400`` is not turned into a float, nor a 5,000-digit
    integer into an error); bytes that are not UTF-8 become non-text characters, which the
    checks refuse in the row that has them.
    """
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as exc:
        raise InputError(source, None, f"cannot read: {exc.strerror}") from exc
    stripped = text.lstrip()
    if Path(path).suffix.lower() in (".jsonl", ".ndjson", ".json") or stripped.startswith("{"):
        rows: list[tuple[int, dict[str, str]]] = []
        number = 0
        for line in text.splitlines():
            if not line.strip():
                continue
            number += 1
            try:
                obj = json.loads(line, parse_float=str, parse_int=str, parse_constant=str)
            except json.JSONDecodeError as exc:
                raise InputError(source, number, f"not valid JSON: {exc.msg}") from None
            except RecursionError:
                raise InputError(source, number, "not valid JSON: nested too deeply") from None
            if not isinstance(obj, dict):
                rows.append((number, {}))
                continue
            rows.append((number, {str(k): "" if v is None else str(v) for k, v in obj.items()}))
        return rows
    # A field may be as long as the file (the checks refuse it as a row, with its length).
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(source, None, f"missing column(s) {', '.join(missing)}")
        return [
            (number, {k: (v or "").strip() for k, v in row.items() if k is not None})
            for number, row in enumerate(reader, start=1)
        ]
    except csv.Error as exc:
        raise InputError(source, None, f"not valid CSV: {exc}") from None
    finally:
        csv.field_size_limit(limit)


def check_intents(
    rows: Iterable[tuple[int, Mapping[str, str]]],
    source: str,
    *,
    strategies: Collection[str] | None,
    instruments: InstrumentTable | None,
    now: datetime | None,
    bar_tolerance: int = 0,
    bar_interval: timedelta = timedelta(days=1),
    max_intent_qty: int = DEFAULT_MAX_INTENT_QTY,
) -> tuple[list[Intent], list[RowRefusal]]:
    """Check intent rows; return (valid intents, refusals).

    ``strategies`` ``None`` accepts any name; ``instruments`` ``None`` leaves the symbol checks
    to routing; ``now`` (timezone-aware) ``None`` skips the bar's age check. ``|qty|`` may be
    at most ``max_intent_qty`` lots of the symbol (its units when the table does not list it).
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    oldest_end = None if now is None else now - bar_tolerance * bar_interval
    kept: dict[str, Intent] = {}
    refused: list[RowRefusal] = []
    bars: dict[str, Bar] = {}  # a batch names few bars: parse each text once
    stale_of: dict[str, bool] = {}
    for number, row in rows:
        key = (row.get("intent_id") or "").strip()
        shown = key if len(key) <= MAX_TEXT["intent_id"] and key.isprintable() else _show(key)

        def refuse(reason: Reason, detail: str, number: int = number, key: str = shown) -> None:
            refused.append(
                RowRefusal(source=source, row=number, key=key, reason=reason, detail=detail)
            )

        empty = [c for c in INTENT_COLUMNS if not (row.get(c) or "").strip()]
        if empty:
            refuse(Reason.INVALID, f"missing {', '.join(empty)}")
            continue
        strategy, symbol = row["strategy"].strip(), row["symbol"].strip()
        fields = {"intent_id": key, "strategy": strategy, "symbol": symbol}
        text_problem = next(
            (p for name, v in fields.items() if (p := _text_problem(name, v, MAX_TEXT[name]))),
            "",
        )
        if text_problem:
            refuse(Reason.INVALID, text_problem)
            continue
        qty_text = row["qty"].strip()
        if len(qty_text) > _MAX_NUMBER_TEXT:
            refuse(Reason.INVALID, f"qty {_show(qty_text)} is too long to be a quantity")
            continue
        try:
            qty = Decimal(qty_text)
        except InvalidOperation:
            refuse(Reason.INVALID, f"qty {_show(qty_text)} is not a number")
            continue
        if not qty.is_finite() or qty == 0:
            refuse(Reason.INVALID, f"qty {_show(qty_text)} must be a finite non-zero number")
            continue
        try:
            asset_class = AssetClass(row["asset_class"].strip())
        except ValueError:
            refuse(
                Reason.UNKNOWN_ASSET_CLASS,
                f"asset_class {_show(row['asset_class'].strip())} is not known",
            )
            continue
        bar_text = row["bar"]
        bar = bars.get(bar_text)
        if bar is None:
            try:
                bar = bars[bar_text] = parse_bar(bar_text)
            except ValueError as exc:
                refuse(Reason.INVALID, f"bar: {exc}")
                continue
        if strategies is not None and strategy not in strategies:
            refuse(Reason.UNKNOWN_STRATEGY, f"strategy {strategy!r} is not registered")
            continue
        inst = instruments.get(symbol) if instruments is not None else None
        if instruments is not None and inst is None:
            refuse(Reason.UNKNOWN_SYMBOL, f"symbol {symbol!r} is not in the symbol table")
            continue
        if inst is not None and inst.asset_class != asset_class:
            refuse(Reason.INVALID, f"{symbol} is {inst.asset_class}, not {asset_class}")
            continue
        # Before the lot check: ``qty % lot`` itself raises on a quotient beyond 28 digits.
        qty_problem = _qty_problem(
            qty_text, qty, inst.lot_size if inst is not None else None, max_intent_qty
        )
        if qty_problem:
            refuse(Reason.INVALID, qty_problem)
            continue
        if inst is not None and not inst.is_lot_multiple(qty):
            refuse(Reason.INVALID, f"qty {qty} is not a multiple of the lot size {inst.lot_size}")
            continue
        stale = stale_of.get(bar.key)
        if stale is None:
            stale = stale_of[bar.key] = oldest_end is not None and bar.end() < oldest_end
        if stale:
            refuse(
                Reason.STALE_BAR, f"bar {bar} is older than the tolerance of {bar_tolerance} bar(s)"
            )
            continue
        intent = Intent(
            intent_id=key,
            strategy=strategy,
            symbol=symbol,
            asset_class=asset_class,
            qty=qty,
            bar=bar,
        )
        earlier = kept.get(key)
        if earlier is not None and earlier != intent:
            refuse(
                Reason.DUPLICATE, f"intent id {key} appears earlier in the file with other content"
            )
            continue
        kept[key] = intent
    return list(kept.values()), refused


def check_returns(
    rows: Iterable[tuple[int, Mapping[str, str]]], source: str
) -> tuple[list[ReturnRow], list[RowRefusal]]:
    """Check ``date,strategy,return`` rows; an empty ``return`` is a missing value."""
    kept: dict[tuple[str, str], ReturnRow] = {}
    refused: list[RowRefusal] = []
    for number, row in rows:
        day_text = (row.get("date") or "").strip()
        strategy = (row.get("strategy") or "").strip()
        key = f"{day_text[:40]}/{strategy[:40]}"
        value_text = (row.get("return") or "").strip()
        problem = ""
        value: float | None = None
        try:
            if len(day_text) != 10:
                raise ValueError
            day = date.fromisoformat(day_text).isoformat()
        except ValueError:
            problem = f"date {_show(day_text)} is not YYYY-MM-DD"
            day = day_text
        if not problem and not strategy:
            problem = "missing strategy"
        if not problem:
            problem = _text_problem("strategy", strategy, MAX_TEXT["strategy"])
        if not problem and value_text:
            try:
                if len(value_text) > _MAX_NUMBER_TEXT or "_" in value_text:
                    raise ValueError
                value = float(value_text)
            except ValueError:
                problem = f"return {_show(value_text)} is not a number"
            else:
                if not math.isfinite(value):
                    problem = f"return {_show(value_text)} is not finite"
        if problem:
            refused.append(
                RowRefusal(
                    source=source, row=number, key=key, reason=Reason.INVALID, detail=problem
                )
            )
            continue
        item = ReturnRow(date=day, strategy=strategy, value=value)
        if (day, strategy) in kept and kept[(day, strategy)] != item:
            refused.append(
                RowRefusal(
                    source=source,
                    row=number,
                    key=key,
                    reason=Reason.DUPLICATE,
                    detail="the same date and strategy appear earlier in the file",
                )
            )
            continue
        kept[(day, strategy)] = item
    return list(kept.values()), refused
