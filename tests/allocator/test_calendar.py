"""The session calendar's disk cache (allocator/calendar.py)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pytest

import allocator.calendar as calendar
from allocator.calendar import SessionCalendar
from allocator.errors import ConfigError

START, END = dt.date(2019, 12, 20), dt.date(2021, 1, 8)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ALLOCATOR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "calendars"


def _files(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.npy")) if cache.exists() else []


def test_a_cached_calendar_is_the_built_one_and_needs_no_exchange_calendars(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = SessionCalendar.load("XNYS", START, END)
    assert len(_files(cache)) == 1
    assert np.datetime64("2020-12-25") not in built.sessions  # a holiday: really XNYS
    monkeypatch.setitem(sys.modules, "exchange_calendars", None)  # importing it now fails
    cached = SessionCalendar.load("XNYS", START, END)
    np.testing.assert_array_equal(cached.sessions, built.sessions)
    assert cached.sessions.dtype == np.dtype("datetime64[D]")


def test_each_range_and_version_has_its_own_file(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = SessionCalendar.load("XNYS", START, END)
    b = SessionCalendar.load("XNYS", START, END + dt.timedelta(days=40))
    assert len(_files(cache)) == 2
    assert b.sessions.size > a.sessions.size
    from importlib import metadata

    real = metadata.version
    monkeypatch.setattr(
        metadata,
        "version",
        lambda name: "0.0-other" if name == "exchange_calendars" else real(name),
    )
    SessionCalendar.load("XNYS", START, END)
    assert len(_files(cache)) == 3  # another exchange_calendars: never the old file


@pytest.mark.parametrize(
    "damage",
    [
        b"not a numpy file",
        b"",
        "floats",
        "unsorted",
    ],
)
def test_a_damaged_cache_file_is_rebuilt(cache: Path, damage: bytes | str) -> None:
    built = SessionCalendar.load("XNYS", START, END)
    (path,) = _files(cache)
    if damage == "floats":
        np.save(path, np.arange(5.0))
    elif damage == "unsorted":
        np.save(path, built.sessions[::-1])
    else:
        assert isinstance(damage, bytes)
        path.write_bytes(damage)
    again = SessionCalendar.load("XNYS", START, END)
    np.testing.assert_array_equal(again.sessions, built.sessions)
    np.testing.assert_array_equal(np.load(path), built.sessions)  # and written back whole


def test_a_cache_path_that_is_a_file_is_skipped(cache: Path) -> None:
    cache.parent.mkdir(parents=True)
    cache.write_text("a file where the folder should be")
    assert SessionCalendar.load("XNYS", START, END).sessions.size > 200
    assert cache.read_text() == "a file where the folder should be"


def test_an_unknown_calendar_is_refused_and_never_cached(cache: Path) -> None:
    with pytest.raises(ConfigError, match="unknown exchange calendar 'NOPE'"):
        SessionCalendar.load("NOPE", START, END)
    assert _files(cache) == []


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLOCATOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert calendar._cache_dir() == Path("/x/cache/allocator")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert calendar._cache_dir() == Path.home() / ".cache" / "allocator"
    monkeypatch.setenv("ALLOCATOR_CACHE_DIR", "/y")
    assert calendar._cache_dir() == Path("/y")
