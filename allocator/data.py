"""Strategy returns in, validated, on the session clock (SPEC §1, §11).

:func:`load_returns` reads the long format ``date,strategy,return`` from CSV or Parquet and
:func:`build_panel` puts it on the calendar: one row per session, one column per strategy in name
order, NaN where a strategy that exists has no return, and each strategy's first session. Every
problem is an :class:`~allocator.errors.InputError` naming the file, the data row (1-based; the
header is not counted) and what is wrong.

Two readings of SPEC §1 made explicit here:

* A strategy *exists* from its first non-empty return; rows with an empty ``return`` before it
  are ignored (there is nothing to be missing yet).
* Several rows of one strategy that fall on the same session (a session plus the non-session
  days rolled into it) are compounded, ``prod(1 + r) - 1``; if any of them is empty the session
  is missing. A single row keeps its value bit for bit. A trailing non-session date rolls into
  the next session, which then belongs to the history.

Why CSV fields are read as plain strings, with no NA detection: an empty ``return`` field is an
explicit missing value and must be told apart from an absent row, and a token that pandas would
silently turn into NaN (``NA``, ``null``, ``nan``) must instead be reported as "not a number"
with its row, so that no bad input becomes a missing value unnoticed.

Why a CSV is read with the standard library's ``csv`` module and not pandas: ``allocator
replay`` is run from the shell in loops, and importing pandas costs it about 0.5 s of its
1.5 s budget (``replay_cli_wall_s``). A file that is not a plain rectangle of fields (an empty
file, a repeated header, a ragged row, bytes that are not UTF-8) is read by pandas instead, so
it gets pandas' reading or error. Parquet is read by pandas.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from allocator.arrays import BoolArray, FloatArray
from allocator.calendar import SessionCalendar
from allocator.errors import InputError

__all__ = ["ReturnsFrame", "ReturnsPanel", "build_panel", "load_returns", "validate_returns"]

REQUIRED_COLUMNS = ("date", "strategy", "return")


@dataclass(frozen=True, slots=True)
class ReturnsFrame:
    """Validated long-format returns: parallel arrays, one entry per input row.

    ``ret`` is NaN where the file's field was empty (an explicit missing value).

    Attributes
    ----------
    source : str
        The file (or a label such as ``ledger:daily_returns``) named in error messages.
    dates : numpy.ndarray of datetime64[D], shape (rows,)
        Each row's calendar date as written (not yet rolled to a session).
    strategies : numpy.ndarray of object (str), shape (rows,)
        Each row's strategy name, stripped of surrounding spaces, never empty.
    ret : numpy.ndarray of float64, shape (rows,)
        Each row's simple daily return, a fraction (0.01 = +1%), finite and > -1; NaN where the
        field was empty.
    """

    source: str
    dates: npt.NDArray[np.datetime64]
    strategies: npt.NDArray[np.object_]
    ret: FloatArray


@dataclass(frozen=True, slots=True)
class ReturnsPanel:
    """Returns on the session clock.

    ``values[t, j]`` is strategy ``j``'s simple return for session ``t`` (NaN when missing or
    before it exists); ``first[j]`` is the session index of its first return
    (``len(sessions)`` if it never has one). Strategies are in code-point name order.

    Attributes
    ----------
    sessions : numpy.ndarray of datetime64[D], shape (T,)
        Every session of the calendar from the session of the earliest row's date to the
        session of the latest row's date, ascending.
    strategies : tuple of str
        Every strategy named in the input, in code-point order (the columns).
    values : numpy.ndarray of float64, shape (T, N)
        Simple daily returns, fractions, > -1; NaN when missing or before the strategy exists.
    first : numpy.ndarray of intp, shape (N,)
        Session index of each strategy's first non-empty return, in [0, T]; T when it has
        none.
    """

    sessions: npt.NDArray[np.datetime64]
    strategies: tuple[str, ...]
    values: FloatArray
    first: npt.NDArray[np.intp]

    def prefix(self, n_sessions: int) -> ReturnsPanel:
        """Return the first ``n_sessions`` sessions (for prefix-consistency checks)."""
        return ReturnsPanel(
            sessions=self.sessions[:n_sessions],
            strategies=self.strategies,
            values=self.values[:n_sessions],
            first=np.minimum(self.first, n_sessions),
        )


def _read_csv_columns(path: Path) -> dict[str, npt.NDArray[np.object_]] | None:
    """Read a regular CSV (header, then rows of as many fields) into string columns.

    Returns ``None`` for anything else (an empty file, a repeated header name, a row with
    another number of fields, bytes that are not UTF-8): :func:`_read_table` then reads the
    file with pandas, so that such a file gets pandas' own error or reading. Blank lines are
    skipped, as pandas does, and a UTF-8 byte-order mark is dropped.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row]
    except (UnicodeDecodeError, csv.Error):
        return None
    if not rows:
        return None
    header = [c.strip() for c in rows[0]]
    width = len(header)
    if len(set(header)) != width or any(len(row) != width for row in rows):
        return None
    if len(rows) == 1:
        return {name: np.empty(0, dtype=object) for name in header}
    fields = np.array(rows[1:], dtype=object)
    return {name: fields[:, j] for j, name in enumerate(header)}


def _read_table(path: Path) -> Mapping[str, Any]:
    source = str(path)
    if not path.exists():
        raise InputError(source, None, "file not found")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq"):
        columns = _read_csv_columns(path)
        if columns is not None:
            return columns
    import pandas as pd

    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(source, None, f"cannot be read as {suffix or 'csv'}: {exc}") from exc
    return _frame_columns(frame)


def _frame_columns(frame: Any) -> dict[str, Any]:
    """Return a DataFrame's columns under their stripped names (a repeated name keeps the first)."""
    out: dict[str, Any] = {}
    for position, name in enumerate(frame.columns):
        out.setdefault(str(name).strip(), frame.iloc[:, position])
    return out


def _missing(value: object) -> bool:
    """Tell whether a cell of a typed column is null (``None``, NaN, NaT, ``pd.NA``)."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT are not equal to themselves
    except (TypeError, ValueError):  # pd.NA refuses a truth value
        return True


# What :func:`_parse_dates` accepts: ``YYYY-M-D`` with one or two digits of month and day, as
# pandas' ``to_datetime(format="%Y-%m-%d")`` does.
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})", re.ASCII)
# A decimal number as pandas' ``to_numeric`` reads one, without its special words.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_INFINITY = re.compile(r"([+-]?)inf(?:inity)?", re.ASCII | re.IGNORECASE)
# Whole columns of clean cells, checked in one scan before the cell-by-cell parse.
_CLEAN_DATES = re.compile(r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}\n)*[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_CLEAN_NUMBERS = re.compile(rf"(?:{_NUMBER.pattern}\n)*{_NUMBER.pattern}", re.ASCII)


def _clean(values: list[Any], pattern: re.Pattern[str]) -> bool:
    """Tell whether every cell is a string and the column, a cell a line, matches ``pattern``."""
    try:
        return bool(values) and pattern.fullmatch("\n".join(values)) is not None
    except TypeError:  # a cell that is not a string
        return False


def _parse_dates(raw: Any) -> npt.NDArray[np.datetime64]:
    """Parse dates: ISO text (``YYYY-MM-DD``, stripped) or ``datetime.date`` objects.

    ``NaT`` where a cell is neither. A ``datetime`` gives its own calendar day (a tz-aware
    one, its local day).
    """
    values = raw.tolist() if hasattr(raw, "tolist") else list(raw)
    if _clean(values, _CLEAN_DATES):
        try:
            return np.array(values, dtype="datetime64[D]")
        except ValueError:  # a day or month out of range: the cell-by-cell parse finds it
            pass
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[D]")
    texts: list[str] = []
    rows: list[int] = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            match = _ISO_DATE.fullmatch(value.strip())
            if match is None:
                continue
            y, m, d = match.groups()
            texts.append(f"{y}-{m.zfill(2)}-{d.zfill(2)}")
        elif isinstance(value, dt.date):
            day = value.date() if isinstance(value, dt.datetime) else value
            texts.append(day.isoformat())
        else:
            continue
        rows.append(i)
    try:
        out[rows] = np.array(texts, dtype="datetime64[D]")
    except ValueError:  # a day or month out of range somewhere: find which, one by one
        for i, text in zip(rows, texts, strict=True):
            with contextlib.suppress(ValueError):
                out[i] = np.datetime64(text, "D")
    return out


def _parse_returns(raw: Any) -> tuple[FloatArray, BoolArray]:
    """Parse returns written as text: the values (NaN where not a number) and the blanks."""
    values = raw.tolist() if hasattr(raw, "tolist") else list(raw)
    if _clean(values, _CLEAN_NUMBERS):
        return np.array(values, dtype=np.float64), np.zeros(len(values), dtype=bool)
    out = np.full(len(values), np.nan)
    blank = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if _missing(value):
            blank[i] = True
            continue
        text = str(value).strip()
        if not text:
            blank[i] = True
        elif _NUMBER.fullmatch(text) is not None:
            out[i] = float(text)
        else:
            infinite = _INFINITY.fullmatch(text)
            if infinite is not None:
                out[i] = -math.inf if infinite.group(1) == "-" else math.inf
    return out, blank


def validate_returns(frame: Any, source: str) -> ReturnsFrame:
    """Check columns, dates, names and numbers of a long-format returns table.

    Parameters
    ----------
    frame : pandas.DataFrame or mapping of column name to array
        Columns ``date``, ``strategy`` and ``return`` (others are ignored; names are
        stripped): strings as read from a CSV, or typed columns from Parquet or the ledger.
        Dates are ISO ``YYYY-MM-DD``.
    source : str
        The file or label named in error messages.

    Returns
    -------
    ReturnsFrame

    Raises
    ------
    InputError
        With the 1-based data row: a missing column, an unparsable date, an empty strategy
        name, a return that is not a number, not finite or <= -1, or a duplicated
        ``(date, strategy)``.

    Notes
    -----
    Text is parsed without pandas (``allocator replay`` reads a CSV without importing it):
    a date matches ``YYYY-M-D`` (ASCII digits; one or two of month and day) and is a real day; a
    return is a decimal number (``+``/``-``, digits, a point, an exponent), or an infinity
    (``inf``, ``Infinity``), which is then refused as not finite. Anything else, ``nan``
    and ``NA`` included, is "not a number": no token becomes a missing value; only an empty
    field is one.
    """
    columns = frame if isinstance(frame, Mapping) else _frame_columns(frame)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(
            source, None, f"missing column(s) {missing}; expected {list(REQUIRED_COLUMNS)}"
        )
    raw_dates = _cells(columns["date"])
    raw_names = _cells(columns["strategy"])
    raw_ret = _cells(columns["return"])
    n = len(raw_dates)

    if raw_dates.dtype.kind == "M":
        day = raw_dates.astype("datetime64[D]")
    else:
        day = _parse_dates(raw_dates)
    bad = np.flatnonzero(np.isnat(day))
    if bad.size:
        row = int(bad[0])
        raise InputError(
            source, row + 1, f"date {raw_dates[row]!r} is not an ISO date (YYYY-MM-DD)"
        )

    names = np.array(
        ["" if _missing(v) else str(v).strip() for v in raw_names.tolist()], dtype=object
    )
    empty = np.flatnonzero(names == "") if n else np.empty(0, dtype=np.intp)
    if empty.size:
        raise InputError(source, int(empty[0]) + 1, "strategy name is empty")

    if raw_ret.dtype.kind in "fiub":
        ret = raw_ret.astype(np.float64)
        blank = np.isnan(ret)
    else:
        ret, blank = _parse_returns(raw_ret)
        not_number = np.flatnonzero(np.isnan(ret) & ~blank)
        if not_number.size:
            row = int(not_number[0])
            raise InputError(source, row + 1, f"return {raw_ret[row]!r} is not a number")
    not_finite = np.flatnonzero(~np.isfinite(ret) & ~blank)
    if not_finite.size:
        row = int(not_finite[0])
        raise InputError(source, row + 1, f"return {raw_ret[row]!r} is not finite")
    too_low = np.flatnonzero(ret <= -1.0)
    if too_low.size:
        row = int(too_low[0])
        raise InputError(
            source,
            row + 1,
            f"return {float(ret[row])!r} is <= -1 (a simple return cannot lose more)",
        )

    seen: dict[tuple[int, str], int] = {}
    twins: dict[int, int] = {}  # first row of a repeated key -> the row that repeats it
    for i, key in enumerate(zip(day.view(np.int64).tolist(), names.tolist(), strict=True)):
        earlier = seen.setdefault(key, i)
        if earlier != i:
            twins.setdefault(earlier, i)
    if twins:
        first = min(twins)
        raise InputError(
            source,
            twins[first] + 1,
            f"duplicated (date, strategy) ({np.datetime_as_string(day[first])}, "
            f"{names[first]}): also on row {first + 1}",
        )
    return ReturnsFrame(
        source=source,
        dates=day,
        strategies=names,
        ret=np.where(blank, np.nan, ret) if n else ret,
    )


def _cells(column: Any) -> npt.NDArray[Any]:
    """Return a column as a numpy array: typed where it is typed, else objects (never pd.NA)."""
    if hasattr(column, "dtype") and not isinstance(column, np.ndarray):  # a pandas Series
        kind = getattr(column.dtype, "kind", "O")
        if kind == "M" and getattr(column.dtype, "tz", None) is None:
            return np.asarray(column.to_numpy(dtype="datetime64[ns]"))
        if kind in "fiu":
            return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan))
        if kind == "b" and not column.hasnans:
            return np.asarray(column.to_numpy(dtype=np.float64))
        return np.asarray(column.to_numpy(dtype=object, na_value=None), dtype=object)
    return np.asarray(column)


def load_returns(path: str | Path) -> ReturnsFrame:
    """Read and validate a returns file (``.csv`` or ``.parquet``).

    A ``.parquet`` or ``.pq`` suffix is read as Parquet; any other file as CSV.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    ReturnsFrame

    Raises
    ------
    InputError
        The file is missing or unreadable, or a row is invalid (see
        :func:`validate_returns`).
    """
    p = Path(path)
    return validate_returns(_read_table(p), str(p))


def build_panel(frame: ReturnsFrame, calendar_name: str = "XNYS") -> ReturnsPanel:
    """Put validated returns on the session clock of ``calendar_name``.

    Parameters
    ----------
    frame : ReturnsFrame
        Validated returns.
    calendar_name : str, default "XNYS"
        An ``exchange_calendars`` name (config key ``calendar.name``).

    Returns
    -------
    ReturnsPanel

    Raises
    ------
    InputError
        ``frame`` has no rows.
    ConfigError
        The calendar is unknown or cannot cover the dates.
    """
    if frame.dates.size == 0:
        raise InputError(frame.source, None, "no data rows")
    start = dt.date.fromisoformat(str(frame.dates.min()))
    end = dt.date.fromisoformat(str(frame.dates.max()))
    cal = SessionCalendar.load(calendar_name, start, end)
    idx = cal.roll_forward(frame.dates)
    beyond = np.flatnonzero(idx >= cal.sessions.size)
    if beyond.size:  # pragma: no cover - the calendar margin covers any weekend or holiday run
        row = int(beyond[0])
        raise InputError(frame.source, row + 1, "date has no session on or after it")
    t0 = int(idx.min())
    t1 = int(idx.max())
    sessions = cal.sessions[t0 : t1 + 1]
    ti = idx - t0

    strategies = tuple(sorted({str(s) for s in frame.strategies}))
    col = {name: j for j, name in enumerate(strategies)}
    sj = np.fromiter((col[str(s)] for s in frame.strategies), dtype=np.intp, count=frame.ret.size)
    T, N = sessions.size, len(strategies)

    # A strategy exists from the session of its first non-empty return.
    present = ~np.isnan(frame.ret)
    first = np.full(N, T, dtype=np.intp)
    np.minimum.at(first, sj[present], ti[present])

    # Rows before a strategy's first return are not "missing": drop them.
    keep = ti >= first[sj]
    ti, sj, ret = ti[keep], sj[keep], frame.ret[keep]

    values = np.full((T, N), np.nan)
    counts = np.zeros((T, N), dtype=np.int64)
    np.add.at(counts, (ti, sj), 1)
    single = counts[ti, sj] == 1
    values[ti[single], sj[single]] = ret[single]
    multi = ~single
    if multi.any():
        growth = np.ones((T, N))
        np.multiply.at(growth, (ti[multi], sj[multi]), 1.0 + ret[multi])
        cells = counts > 1
        values[cells] = growth[cells] - 1.0  # NaN propagates: one empty field -> missing
    return ReturnsPanel(sessions=sessions, strategies=strategies, values=values, first=first)
