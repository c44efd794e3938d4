"""The allocator's clock (SPEC §1): trading sessions of an exchange calendar.

A thin, typed face over ``exchange_calendars``: the sessions between two dates as
``datetime64[D]`` and the mapping of any date to the session it belongs to (itself when it is a
session, else the next session, so that a crypto weekend compounds into Monday).
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from allocator.errors import ConfigError

__all__ = ["SessionCalendar"]

DateArray = npt.NDArray[np.datetime64]

# How far past the last date to look for the session a trailing non-session date rolls into.
_ROLL_MARGIN_DAYS = 20
_XCALS_PANDAS_DEPRECATION = "Series.values returning an ndarray that drops timezone"


@dataclass(frozen=True, slots=True)
class SessionCalendar:
    """Sessions of the named calendar from ``start`` to ``end`` (inclusive, as ``datetime64[D]``),
    plus a margin after ``end`` so that a trailing weekend date has a session to roll into."""

    name: str
    sessions: DateArray

    @classmethod
    def load(cls, name: str, start: dt.date, end: dt.date) -> SessionCalendar:
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
        """Index of the session each date belongs to: the date itself if it is a session, else
        the next session. Dates past the last known session map to ``len(sessions)``."""
        return np.searchsorted(self.sessions, dates.astype("datetime64[D]"), side="left")
