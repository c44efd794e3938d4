"""The pipeline's bar prices: lenient about a missing file, strict about a malformed one."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from allocator.errors import InputError
from resources.dagster_resources import PricesResource


def test_file_or_folder_and_no_file_means_no_prices(tmp_path: Path) -> None:
    assert PricesResource(prices_path="").prices("2024-05-01") == {}
    assert PricesResource(prices_path=str(tmp_path)).prices("2024-05-01") == {}
    (tmp_path / "2024-05-01.csv").write_text("symbol,price\nSPY,500\n", encoding="utf-8")
    assert PricesResource(prices_path=str(tmp_path)).prices("2024-05-01") == {"SPY": Decimal(500)}
    one = tmp_path / "2024-05-01.csv"
    assert PricesResource(prices_path=str(one)).prices("2024-06-03") == {"SPY": Decimal(500)}


def test_a_malformed_price_fails_the_bar_with_file_and_row(tmp_path: Path) -> None:
    # Before, a price of 0 or NaN was dropped without a word (the symbol then looked unpriced).
    path = tmp_path / "prices.csv"
    path.write_text("symbol,price\nSPY,500\nKO,NaN\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"prices\.csv: row 2: price 'NaN' is not finite"):
        PricesResource(prices_path=str(path)).prices("2024-05-01")
