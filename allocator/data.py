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

Why CSV fields are read as plain strings (``dtype=str``, no NA detection): an empty ``return``
field is an explicit missing value and must be told apart from an absent row, and a token that
pandas would silently turn into NaN (``NA``, ``null``, ``nan``) must instead be reported as
"not a number" with its row, so that no bad input becomes a missing value unnoticed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from allocator.arrays import FloatArray
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


def _read_table(path: Path) -> pd.DataFrame:
    source = str(path)
    if not path.exists():
        raise InputError(source, None, "file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(source, None, f"cannot be read as {suffix or 'csv'}: {exc}") from exc
    return frame


def validate_returns(frame: pd.DataFrame, source: str) -> ReturnsFrame:
    """Check columns, dates, names and numbers of a long-format returns table.

    Parameters
    ----------
    frame : pandas.DataFrame
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
    """
    columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(
            source, None, f"missing column(s) {missing}; expected {list(REQUIRED_COLUMNS)}"
        )
    frame = frame.set_axis(columns, axis=1)
    n = len(frame)

    raw_dates = frame["date"]
    if pd.api.types.is_datetime64_any_dtype(raw_dates):
        dates = pd.to_datetime(raw_dates)
    else:
        text = raw_dates.astype(str).str.strip()
        dates = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if bad.size:
        row = int(bad[0])
        raise InputError(
            source, row + 1, f"date {raw_dates.iloc[row]!r} is not an ISO date (YYYY-MM-DD)"
        )

    names = frame["strategy"].astype(str).str.strip()
    empty = np.flatnonzero((names == "").to_numpy() | frame["strategy"].isna().to_numpy())
    if empty.size:
        raise InputError(source, int(empty[0]) + 1, "strategy name is empty")

    raw_ret = frame["return"]
    if pd.api.types.is_numeric_dtype(raw_ret):
        ret = raw_ret.to_numpy(dtype=np.float64, na_value=np.nan)
        blank = np.isnan(ret)
    else:
        text = raw_ret.astype(str).str.strip()
        blank = (text == "").to_numpy() | raw_ret.isna().to_numpy()
        ret = pd.to_numeric(text.where(~blank, "nan"), errors="coerce").to_numpy(dtype=np.float64)
        not_number = np.flatnonzero(np.isnan(ret) & ~blank)
        if not_number.size:
            row = int(not_number[0])
            raise InputError(source, row + 1, f"return {raw_ret.iloc[row]!r} is not a number")
    not_finite = np.flatnonzero(~np.isfinite(ret) & ~blank)
    if not_finite.size:
        row = int(not_finite[0])
        raise InputError(source, row + 1, f"return {raw_ret.iloc[row]!r} is not finite")
    too_low = np.flatnonzero(ret <= -1.0)
    if too_low.size:
        row = int(too_low[0])
        raise InputError(
            source,
            row + 1,
            f"return {float(ret[row])!r} is <= -1 (a simple return cannot lose more)",
        )

    day = dates.dt.normalize().to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    keyed = pd.DataFrame({"date": day, "strategy": names.to_numpy()})
    dup = keyed.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        first = int(rows[0])
        twin = next(
            int(r)
            for r in rows[1:]
            if keyed.iloc[r]["strategy"] == keyed.iloc[first]["strategy"]
            and keyed.iloc[r]["date"] == keyed.iloc[first]["date"]
        )
        raise InputError(
            source,
            twin + 1,
            f"duplicated (date, strategy) ({np.datetime_as_string(day[first])}, "
            f"{names.iloc[first]}): also on row {first + 1}",
        )
    return ReturnsFrame(
        source=source,
        dates=day,
        strategies=names.to_numpy(dtype=object),
        ret=np.where(blank, np.nan, ret) if n else ret,
    )


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
