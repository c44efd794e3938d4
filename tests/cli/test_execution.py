"""The ``allocator`` sub-commands of the execution core, run through the real dispatcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


INTENTS = (
    "intent_id,strategy,symbol,asset_class,qty,bar\n"
    "a1,A,SPY,etf,100,2024-05-01\n"
    "b1,B,SPY,etf,-60,2024-05-01\n"
    "c1,C,KO,equity,abc,2024-05-01\n"
    "c2,C,NOPE,equity,5,2024-05-01\n"
)


def test_net_writes_orders_fills_and_refusals(tmp_path: Path) -> None:
    intents = _write(tmp_path / "intents.csv", INTENTS)
    prices = _write(tmp_path / "prices.csv", "symbol,price\nSPY,500.10\nKO,60\n")
    out = tmp_path / "out"
    assert main(["net", str(intents), "--prices", str(prices), "--out", str(out)]) == 0
    orders = (out / "orders.csv").read_text().splitlines()
    assert orders[0] == "symbol,side,qty,venue,client_order_id,filled_qty,avg_price,fee"
    assert len(orders) == 2
    assert orders[1].startswith("SPY,buy,40,alpaca,")
    assert orders[1].endswith(",40,500.1,0")
    assert (out / "fills.csv").read_text().splitlines() == [
        "strategy,symbol,qty,price,fee,internal",
        "A,SPY,40,500.1,0,false",
        "A,SPY,60,500.1,0,true",
        "B,SPY,-60,500.1,0,true",
    ]
    assert (out / "refusals.csv").read_text().splitlines() == [
        "intent_id,strategy,symbol,requested_qty,accepted_qty,reason",
        "c1,C,KO,abc,0,invalid",
        "c2,C,NOPE,5,0,unknown_symbol",
    ]
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["net", str(intents), "--prices", str(prices), "--out", str(out)]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_net_with_capital_and_positions(tmp_path: Path) -> None:
    intents = _write(tmp_path / "intents.csv", INTENTS)
    prices = _write(tmp_path / "prices.csv", "symbol,price\nSPY,500\n")
    # A: 20,000 × 1 = 20,000 of SPY at 500 -> 40 shares; it already holds 10 -> 30 more.
    # B is missing from the file: capital 0 -> its short entry is refused.
    capital = _write(tmp_path / "capital.csv", "strategy,capital,max_leverage\nA,20000,1\n")
    positions = _write(tmp_path / "positions.csv", "strategy,symbol,qty\nA,SPY,10\n")
    out = tmp_path / "out"
    code = main(
        [
            "net",
            str(intents),
            "--prices",
            str(prices),
            "--out",
            str(out),
            "--capital",
            str(capital),
            "--positions",
            str(positions),
        ]
    )
    assert code == 0
    refusals = (out / "refusals.csv").read_text().splitlines()
    assert "a1,A,SPY,100,30,budget" in refusals
    assert "b1,B,SPY,-60,0,budget" in refusals
    # Total capital 20,000 < 25,000 changes no equity routing; the buy of 30 goes to Alpaca.
    assert (out / "orders.csv").read_text().splitlines()[1].startswith("SPY,buy,30,alpaca,")


def test_net_bad_prices_file_names_file_and_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    intents = _write(tmp_path / "intents.csv", INTENTS)
    prices = _write(tmp_path / "prices.csv", "symbol,price\nSPY,cheap\n")
    assert main(["net", str(intents), "--prices", str(prices), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{prices}: row 1: price 'cheap' is not a number" in err


def test_intents_and_returns_submit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    returns = _write(
        tmp_path / "returns.csv", "date,strategy,return\n2024-05-01,A,0.01\n2024-05-01,B,\n"
    )
    assert main(["returns", "submit", str(returns), "--ledger", url]) == 0
    restated = _write(tmp_path / "restated.csv", "date,strategy,return\n2024-05-01,A,0.02\n")
    assert main(["returns", "submit", str(restated), "--ledger", url]) == 1
    assert "2024-05-01/A: restated" in capsys.readouterr().err
    assert main(["returns", "submit", str(restated), "--ledger", url, "--correction"]) == 0
    lines = (
        "intent_id,strategy,symbol,asset_class,qty,bar\n"
        "i1,A,SPY,etf,10,2024-05-02\n"
        "i2,Z,SPY,etf,10,2024-05-02\n"
        "i3,A,SPY,bond,10,2024-05-02\n"
        "i4,A,SPY,etf,0,2024-05-02\n"
        "i5,A,SPY,etf,5,2024-04-01\n"
        "i6,,,,,\n"
    )
    intents = _write(tmp_path / "intents.csv", lines)
    code = main(
        ["intents", "submit", str(intents), "--ledger", url, "--now", "2024-05-02T10:00:00Z"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"{intents}: row 2: i2: unknown_strategy" in err
    assert "row 3: i3: unknown_asset_class" in err
    assert "row 4: i4: invalid" in err
    assert "row 5: i5: stale_bar" in err
    assert "row 6: i6: invalid: missing strategy, symbol, asset_class, qty, bar" in err
    jsonl = _write(
        tmp_path / "more.jsonl",
        '{"intent_id": "j1", "strategy": "B", "symbol": "KO", "asset_class": "equity",'
        ' "qty": -3, "bar": "2024-05-02"}\n',
    )
    assert (
        main(["intents", "submit", str(jsonl), "--ledger", url, "--now", "2024-05-02T10:00:00Z"])
        == 0
    )
    assert "1 intent(s) stored" in capsys.readouterr().out
