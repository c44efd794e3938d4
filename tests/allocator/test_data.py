"""Reading returns without pandas gives what pandas gave (allocator/data.py).

The CSV reader and the text parsers replaced ``pd.read_csv``, ``pd.to_datetime(format=
"%Y-%m-%d")`` and ``pd.to_numeric`` on ``allocator replay``'s path. These tests hold them to
pandas: the same values bit for bit, the same cells refused, and the pandas reader (and its
error) for every file that is not a plain rectangle of fields.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.data import _parse_dates, _parse_returns, _read_csv_columns, load_returns
from allocator.errors import InputError

NUMBER_TOKENS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda v: f"{v:.6f}"),
    st.floats(min_value=-1e3, max_value=1e3).map(lambda v: f"{v:.12e}"),
    st.sampled_from(
        [
            "+0.01",
            ".5",
            "5.",
            "-.5e-3",
            "1E5",
            "inf",
            "-Infinity",
            "+inf",
            "nan",
            "NaN",
            "NA",
            "null",
            "1_000",
            "0x10",
            "1,5",
            "1.5e",
            "--1",
            "1d5",
            "١٢",
            "1e400",
            "-1e-400",
            "e5",
            ".",
            "+",
            "",
            "  ",
            " 0.25 ",
            "1.2.3",
            "٣.٥",
        ]
    ),
    st.text(alphabet="0123456789+-.eE ", max_size=8),
)

DATE_TOKENS = st.one_of(
    st.dates(
        min_value=pd.Timestamp.min.date().replace(year=1700), max_value=pd.Timestamp.max.date()
    ).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "2010-1-4",
            "2010-01-4",
            " 2010-01-04 ",
            "2010-02-30",
            "2010-13-01",
            "20100104",
            "2010-01-04T00:00",
            "2010/01/04",
            "01/03/2024",
            "2010-00-10",
            "2010-01-00",
            "",
            "x",
            "2024-02-29",
            "2023-02-29",
            "2010-001-04",
        ]
    ),
)


def _pandas_returns(tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """What allocator/data.py computed with pandas before (the reference)."""
    raw = pd.Series(tokens, dtype=object)
    text = raw.astype(str).str.strip()
    blank = (text == "").to_numpy()
    ret = pd.to_numeric(text.where(~blank, "nan"), errors="coerce").to_numpy(dtype=np.float64)
    return ret, blank


@settings(max_examples=300, deadline=None)
@given(st.lists(NUMBER_TOKENS, min_size=1, max_size=30))
def test_returns_parse_as_pandas_did(tokens: list[str]) -> None:
    ours, blank = _parse_returns(np.array(tokens, dtype=object))
    theirs, their_blank = _pandas_returns(tokens)
    np.testing.assert_array_equal(blank, their_blank)
    # Same cells refused (NaN) and the same values to the bit, infinities included.
    assert np.isnan(ours).tolist() == np.isnan(theirs).tolist()
    keep = ~np.isnan(ours)
    assert ours[keep].tobytes() == theirs[keep].tobytes()


@settings(max_examples=300, deadline=None)
@given(st.lists(DATE_TOKENS, min_size=1, max_size=30))
def test_dates_parse_as_pandas_did(tokens: list[str]) -> None:
    ours = _parse_dates(np.array(tokens, dtype=object))
    text = pd.Series(tokens, dtype=object).astype(str).str.strip()
    theirs = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    expected = theirs.dt.normalize().to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    assert np.isnat(ours).tolist() == theirs.isna().tolist()
    ok = ~np.isnat(ours)
    np.testing.assert_array_equal(ours[ok], expected[ok])


def test_dates_in_other_digits_are_refused() -> None:
    # pandas' strptime reads "２０１０" (full-width digits) as 2010; the ISO contract is ASCII.
    assert np.isnat(_parse_dates(np.array(["２０１０-01-04", "٢٠١٠-01-04"], dtype=object))).all()


def _write(tmp_path: Path, text: str | bytes, name: str = "r.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_reads_as_pandas_read_it(tmp_path: Path) -> None:
    text = (
        "\ufeff date , strategy ,return,note\n"
        '2024-01-02,"a, quoted",0.01,x\n'
        "\n"
        "2024-01-03, b ,-0.02,\n"
        '2024-01-04,"c ""q""",,"multi\nline"\n'
        "2024-1-5,a,1e-3,\n"
    )
    path = _write(tmp_path, text)
    ours = load_returns(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    from allocator.data import validate_returns

    theirs = validate_returns(frame, str(path))
    np.testing.assert_array_equal(ours.dates, theirs.dates)
    assert (
        ours.strategies.tolist() == theirs.strategies.tolist() == ["a, quoted", "b", 'c "q"', "a"]
    )
    assert ours.ret.tobytes() == theirs.ret.tobytes()
    assert math.isnan(ours.ret[2])  # the empty field: a missing value, not a refusal


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("", r"cannot be read as \.csv: No columns to parse from file"),
        (  # one field more than the header on the first row: pandas takes it as the index
            "date,strategy,return\n2024-01-02,a,0.1,extra\n",
            r"row 1: date 'a' is not an ISO date",
        ),
        (  # one field more on a later row: pandas' tokenizer refuses it
            "date,strategy,return\n2024-01-02,a,0.1\n2024-01-03,a,0.1,x\n",
            r"cannot be read as \.csv: Error tokenizing data\. C error: Expected 3 fields",
        ),
        ("date,strategy,return\n2024-01-02,a\n", None),  # short: the return is missing
        ("date,date,strategy,return\n2024-01-02,x,a,0.1\n", None),  # the first "date" counts
    ],
)
def test_an_irregular_csv_is_read_by_pandas(tmp_path: Path, text: str, refusal: str | None) -> None:
    path = _write(tmp_path, text)
    assert _read_csv_columns(path) is None
    if refusal is not None:
        with pytest.raises(InputError, match=refusal):
            load_returns(path)
        return
    got = load_returns(path)
    assert got.strategies.tolist() == ["a"]
    assert got.dates.tolist() == [np.datetime64("2024-01-02", "D").item()]


def test_bytes_that_are_not_utf8_get_pandas_error(tmp_path: Path) -> None:
    path = _write(tmp_path, b"date,strategy,return\n2024-01-02,\xff\xfe,0.1\n")
    assert _read_csv_columns(path) is None
    with pytest.raises(InputError, match=r"cannot be read as .csv: .*utf-8"):
        load_returns(path)


def test_the_first_of_two_duplicated_keys_is_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "date,strategy,return\n"
        "2024-01-03,b,0.1\n"
        "2024-01-02,a,0.1\n"
        "2024-01-02,a,0.2\n"
        "2024-01-03,b,0.3\n",
    )
    with pytest.raises(
        InputError, match=r"row 4: duplicated \(date, strategy\) \(2024-01-03, b\): also on row 1"
    ):
        load_returns(path)


def test_typed_columns_from_parquet_read_as_before(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-03"]),
            "strategy": ["a", "a", "b"],
            "return": [0.01, None, -0.5],
        }
    )
    path = tmp_path / "r.parquet"
    frame.to_parquet(path)
    got = load_returns(path)
    np.testing.assert_array_equal(
        got.dates, np.array(["2024-01-02", "2024-01-03", "2024-01-03"], dtype="datetime64[D]")
    )
    assert got.strategies.tolist() == ["a", "a", "b"]
    assert got.ret[0] == 0.01
    assert math.isnan(got.ret[1])
    assert got.ret[2] == -0.5
