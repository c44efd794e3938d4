"""The allocator's clock (SPEC §1): trading sessions of an exchange calendar.

A thin, typed face over ``exchange_calendars``: the sessions between two dates as
``datetime64[D]`` and the mapping of any date to the session it belongs to (itself when it is a
session, else the next session, so that a crypto weekend compounds into Monday).
:func:`allocator.data.build_panel` uses it to put the returns on the session clock.

Why ``exchange_calendars`` is imported inside :meth:`SessionCalendar.load` and not at module
level: it is a slow import, and the Dagster code location, which every bar run loads before its
orders go out, imports this module (the rule-side checks and the rebalance schedule call it
inside their functions), while a bar run needs no calendar at all.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

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
        import exchange_calendars as xcals  # slow import: only when a calendar is needed

        if name not in xcals.get_calendar_names(include_aliases=True):
            raise ConfigError("calendar.name", f"unknown exchange calendar {name!r}")
        margin_end = end + dt.timedelta(days=_ROLL_MARGIN_DAYS)
        try:
            with warnings.catch_warnings():
                # exchange_calendars 4.13 reads tz-aware Series.values, deprecated in pandas 3.1.
                warnings.filterwarnings("ignore", message=_XCALS_PANDAS_DEPRECATION)
                cal = xcals.get_calendar(name, start=start.isoformat(), end=margin_end.isoformat())
        except (
            ValueError,
            KeyError,
            IndexError,
        ) as exc:  # exchange_calendars raises its own bound errors
            raise ConfigError(
                "calendar.name", f"calendar {name!r} cannot cover {start}..{end}: {exc}"
            ) from exc
        sessions = np.asarray(cal.sessions.values.astype("datetime64[D]"))
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
