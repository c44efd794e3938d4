"""Reference prices: the strict reader, the file-or-folder location, the writer."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from allocator.errors import InputError
from allocator.execution.prices import bar_prices, price_file, read_prices, write_prices

D = Decimal


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_csv_and_json_lines(tmp_path: Path) -> None:
    csv_file = _write(tmp_path / "p.csv", "symbol,price\nSPY,500.10\nBTC/USDT, 65000 \n")
    assert read_prices(csv_file) == {"SPY": D("500.10"), "BTC/USDT": D(65000)}
    jsonl = _write(tmp_path / "p.jsonl", '{"symbol": "SPY", "price": "500.1"}\n')
    assert read_prices(jsonl) == {"SPY": D("500.1")}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("SPY,cheap\n", "row 1: price 'cheap' is not a number"),
        ("SPY,NaN\n", "row 1: price 'NaN' is not finite"),
        ("SPY,Infinity\n", "row 1: price 'Infinity' is not finite"),
        ("SPY,0\n", "row 1: price '0' must be > 0"),
        ("SPY,1\nKO,-2\n", "row 2: price '-2' must be > 0"),
        ("SPY,\n", "row 1: missing price"),
        (",5\n", "row 1: missing symbol"),
        ("SPY,1\nSPY,2\n", "row 2: symbol SPY is listed twice"),
    ],
)
def test_a_bad_row_names_the_file_and_the_row(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path / "p.csv", "symbol,price\n" + body)
    with pytest.raises(InputError, match=f"^{path}: {message}$"):
        read_prices(path)


def test_a_missing_column_or_file_is_an_error_for_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.csv", "symbol,last\nSPY,1\n")
    with pytest.raises(InputError, match=r"p\.csv: missing column\(s\) price"):
        read_prices(path)
    with pytest.raises(InputError, match="cannot read"):
        read_prices(tmp_path / "absent.csv")


def test_a_folder_holds_one_file_per_bar(tmp_path: Path) -> None:
    assert price_file(tmp_path, "2024-05-01") == tmp_path / "2024-05-01.csv"
    assert price_file(tmp_path, "2024-05-01T14:30:00Z") == tmp_path / "2024-05-01T143000Z.csv"
    one = _write(tmp_path / "all.csv", "symbol,price\nSPY,1\n")
    assert price_file(one, "2024-05-01") == one


def test_no_location_or_no_file_means_no_prices_but_a_bad_file_fails(tmp_path: Path) -> None:
    assert bar_prices(None, "2024-05-01") == {}
    assert bar_prices("", "2024-05-01") == {}
    assert bar_prices(tmp_path, "2024-05-01") == {}  # a folder without that bar's file
    assert bar_prices(tmp_path / "absent.csv", "2024-05-01") == {}
    _write(tmp_path / "2024-05-01.csv", "symbol,price\nSPY,500\n")
    assert bar_prices(tmp_path, "2024-05-01") == {"SPY": D(500)}
    _write(tmp_path / "2024-05-02.csv", "symbol,price\nSPY,500\nKO,0\n")
    with pytest.raises(InputError, match=r"2024-05-02\.csv: row 2: price '0' must be > 0"):
        bar_prices(tmp_path, "2024-05-02")


def test_write_then_read_gives_the_same_decimals(tmp_path: Path) -> None:
    prices = {"SPY": D("500.100"), "EUR/USD": D("1.08505"), "ES:202506:CME": D("5300.25")}
    path = price_file(tmp_path, "2024-05-01")
    write_prices(path, prices)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "symbol,price"
    back = read_prices(path)
    assert back == prices
    assert [str(v) for v in back.values()] == ["500.100", "1.08505", "5300.25"]  # exponents kept
    assert not list(tmp_path.glob("*.tmp"))
