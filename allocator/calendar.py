"""The allocator's clock (SPEC §1): trading sessions of an exchange calendar.

A thin, typed face over ``exchange_calendars``: the sessions between two dates as
``datetime64[D]`` and the mapping of any date to the session it belongs to (itself when it is a
session, else the next session, so that a crypto weekend compounds into Monday).
:func:`allocator.data.build_panel` uses it to put the returns on the session clock.

Why ``exchange_calendars`` is imported inside :meth:`SessionCalendar.load` and not at module
level: it is a slow import, and the Dagster code location, which every bar run loads before its
orders go out, imports this module (the rule-side checks and the rebalance schedule call it
inside their functions), while a bar run needs no calendar at all.

Why the sessions are cached on disk: building a calendar costs ``exchange_calendars`` about
0.5 s (it computes every holiday rule over the whole range with pandas), a third of the
1.5 s that ``allocator replay`` may take from the shell (``replay_cli_wall_s``). The sessions
of one (calendar, ``exchange_calendars`` version, range) never change, so they are kept as a
small ``.npy`` file under ``$ALLOCATOR_CACHE_DIR`` (default ``$XDG_CACHE_HOME/allocator``,
else ``~/.cache/allocator``), in ``calendars/``. A new ``exchange_calendars`` version gives new
files; a file that cannot be read or does not hold ascending days is rebuilt; a cache folder
that cannot be written is skipped (the calendar is then built each time, as before).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from allocator.arrays import DateArray
from allocator.errors import ConfigError

__all__ = ["SessionCalendar"]


# How far past the last date to look for the session a trailing non-session date rolls into.
_ROLL_MARGIN_DAYS = 20
_XCALS_PANDAS_DEPRECATION = "Series.values returning an ndarray that drops timezone"


@dataclass(frozen=True, slots=True)
class SessionCalendar:
    """Sessions of a named exchange calendar over a range of dates, plus a margin.

    Build it with :meth:`load`. The margin after ``end`` (20 calendar days) gives a trailing
    non-session date (a weekend, a holiday) a session to roll into.

    Attributes
    ----------
    name : str
        The ``exchange_calendars`` name or alias, e.g. ``"XNYS"``.
    sessions : numpy.ndarray of datetime64[D]
        The calendar's sessions from the first one on or after ``start`` to the last one on or
        before ``end`` + 20 days, ascending, one per trading day.
    """

    name: str
    sessions: DateArray

    @classmethod
    def load(cls, name: str, start: dt.date, end: dt.date) -> SessionCalendar:
        """Load the sessions of calendar ``name`` from ``start`` to ``end`` plus the margin.

        Parameters
        ----------
        name : str
            An ``exchange_calendars`` name or alias (the config key ``calendar.name``).
        start, end : datetime.date
            First and last date to cover (inclusive).

        Returns
        -------
        SessionCalendar

        Raises
        ------
        ConfigError
            Keyed ``calendar.name``: the name is unknown, or the calendar cannot cover the
            range.
        """
        margin_end = end + dt.timedelta(days=_ROLL_MARGIN_DAYS)
        cached = _cache_file(name, start, margin_end)
        sessions = _read_cached(cached) if cached is not None else None
        if sessions is None:
            sessions = _build(name, start, end, margin_end)
            if cached is not None:
                _write_cached(cached, sessions)
        return cls(name=name, sessions=sessions)

    def roll_forward(self, dates: DateArray) -> npt.NDArray[np.intp]:
        """Return the index of the session each date belongs to.

        That is the date itself if it is a session, else the next session. Dates past the last
        known session map to ``len(sessions)``.

        Parameters
        ----------
        dates : numpy.ndarray of datetime64
            Any datetime64 unit; times of day are dropped (cast to ``datetime64[D]``).

        Returns
        -------
        numpy.ndarray of intp
            Indices into :attr:`sessions`, same shape as ``dates``.
        """
        return np.searchsorted(self.sessions, dates.astype("datetime64[D]"), side="left")


def _build(name: str, start: dt.date, end: dt.date, margin_end: dt.date) -> DateArray:
    """Build the sessions of ``name`` from ``start`` to ``margin_end`` (exchange_calendars)."""
    import exchange_calendars as xcals  # slow import: only when a calendar is built

    if name not in xcals.get_calendar_names(include_aliases=True):
        raise ConfigError("calendar.name", f"unknown exchange calendar {name!r}")
    try:
        with warnings.catch_warnings():
            # exchange_calendars 4.13 reads tz-aware Series.values, deprecated in pandas 3.1.
            warnings.filterwarnings("ignore", message=_XCALS_PANDAS_DEPRECATION)
            cal = xcals.get_calendar(name, start=start.isoformat(), end=margin_end.isoformat())
    except (ValueError, KeyError, IndexError) as exc:  # exchange_calendars' own bound errors
        raise ConfigError(
            "calendar.name", f"calendar {name!r} cannot cover {start}..{end}: {exc}"
        ) from exc
    return np.asarray(cal.sessions.values.astype("datetime64[D]"))


def _cache_dir() -> Path:
    explicit = os.environ.get("ALLOCATOR_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "allocator"


def _cache_file(name: str, start: dt.date, margin_end: dt.date) -> Path | None:
    """Return the cache file of one calendar and range; ``None`` without ``exchange_calendars``."""
    from importlib import metadata

    try:
        version = metadata.version("exchange_calendars")
    except metadata.PackageNotFoundError:
        return None
    key = f"{name}\0{version}\0{start.isoformat()}\0{margin_end.isoformat()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return _cache_dir() / "calendars" / f"{digest}.npy"


def _read_cached(path: Path) -> DateArray | None:
    """Return the cached sessions; ``None`` when the file is absent, unreadable or not sessions."""
    try:
        sessions = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if (
        not isinstance(sessions, np.ndarray)
        or sessions.dtype != np.dtype("datetime64[D]")
        or sessions.ndim != 1
        or sessions.size == 0
        or bool(np.isnat(sessions).any())
        or not bool(np.all(sessions[1:] > sessions[:-1]))
    ):
        return None
    return sessions


def _write_cached(path: Path, sessions: DateArray) -> None:
    """Write the cache file atomically; a folder that cannot be written is left alone."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".calendar-", suffix=".npy", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, sessions, allow_pickle=False)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
