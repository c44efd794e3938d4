"""Bad input is a row, never a traceback: hostile rows among valid ones through the command."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.execution.records import parse_bar
from cli.main import main
from resources.ledger import Ledger

NOW = "2024-05-02T10:00:00Z"
BAR = "2024-05-02"

# (field, hostile value, text the refusal's detail must contain)
HOSTILE = [
    ("qty", "-1e20", "qty"),
    ("qty", "1e50", "qty"),
    ("qty", "1e400", "qty"),
    ("qty", "nan", "qty"),
    ("qty", "-Infinity", "qty"),
    ("qty", "1e999999999999", "qty"),
    ("qty", "1234567890123456789", "qty"),
    ("qty", "0.0000000000000000001", "qty"),
    ("qty", "9" * 5000, "qty"),
    ("qty", "1" * 200_000, "qty"),
    ("qty", "0", "qty"),
    ("qty", "1.5", "qty"),
    ("bar", "9999-12-31", "bar"),
    ("bar", "99999-01-01", "bar"),
    ("bar", "0001-01-01T00:00:00+01:00", "bar"),
    ("bar", "2" * 10_000, "bar"),
    ("intent_id", "x" * 201, "intent_id"),
    ("intent_id", "bad\x00id", "intent_id"),
    ("strategy", "A" * 201, "strategy"),
    ("symbol", "S" * 65, "symbol"),
    ("symbol", "SP\u2028Y", "symbol"),  # inside: surrounding whitespace is trimmed
]


def _valid(i: int, strategy: str, symbol: str, qty: int) -> dict[str, str]:
    cls = "etf" if symbol == "SPY" else "equity"
    return {
        "intent_id": f"v{i}",
        "strategy": strategy,
        "symbol": symbol,
        "asset_class": cls,
        "qty": str(qty),
        "bar": BAR,
    }


valid_rows = st.builds(
    lambda strategy, symbol, qty: (strategy, symbol, qty),
    st.sampled_from(["A", "B"]),
    st.sampled_from(["SPY", "KO"]),
    st.integers(-(10**12), 10**12).filter(lambda q: q != 0),
)
mixed = st.lists(
    st.one_of(
        valid_rows.map(lambda v: ("ok", v)), st.sampled_from(HOSTILE).map(lambda h: ("bad", h))
    ),
    min_size=1,
    max_size=12,
).filter(lambda rows: any(kind == "bad" for kind, _ in rows))


def _render(rows: list[dict[str, str]], as_json: bool) -> str:
    if as_json:
        lines = []
        for row in rows:
            item: dict[str, object] = dict(row)
            if row["qty"].lstrip("-").isdigit():
                # a JSON number, not a string: 5,000 digits must not break the reader
                lines.append(
                    json.dumps(item).replace(f'"qty": "{row["qty"]}"', f'"qty": {row["qty"]}')
                )
            else:
                lines.append(json.dumps(item))
        return "\n".join(lines) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=mixed, as_json=st.booleans())
def test_hostile_rows_are_refused_and_valid_rows_kept(
    rows: list[tuple[str, object]], as_json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'ledger.sqlite'}"
        ledger = Ledger(url)
        ledger.register_strategies(["A", "B"])
        ledger.close()
        table: list[dict[str, str]] = []
        expected_ok: dict[str, str] = {}
        expected_bad: dict[int, str] = {}
        for n, (kind, item) in enumerate(rows, start=1):
            if kind == "ok":
                strategy, symbol, qty = item  # type: ignore[misc]
                row = _valid(n, strategy, symbol, qty)
                expected_ok[row["intent_id"]] = row["qty"]
            else:
                field, value, word = item  # type: ignore[misc]
                row = _valid(n, "A", "SPY", 1)
                row[field] = value
                expected_bad[n] = word
            table.append(row)
        path = Path(folder) / ("intents.jsonl" if as_json else "intents.csv")
        path.write_text(_render(table, as_json), encoding="utf-8")
        capsys.readouterr()
        code = main(["intents", "submit", str(path), "--ledger", url, "--now", NOW])
        captured = capsys.readouterr()
        assert code == 1
        assert "Traceback" not in captured.err
        refused = [line for line in captured.err.splitlines() if line.startswith("refused: ")]
        assert len(refused) == len(expected_bad)
        for n, word in expected_bad.items():
            line = next(x for x in refused if f": row {n}: " in x)
            assert ": invalid: " in line
            assert word in line.split(": invalid: ", 1)[1]
            assert len(line) < 500  # a 200,000-character field is not echoed
        ledger = Ledger(url)
        try:
            stored = {i.intent_id: str(i.qty) for i in ledger.intents_for_bar(parse_bar(BAR))}
        finally:
            ledger.close()
        assert stored == expected_ok


def test_bytes_that_are_not_utf8_refuse_their_row_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger(url)
    ledger.register_strategies(["A"])
    ledger.close()
    path = tmp_path / "intents.csv"
    path.write_bytes(
        b"intent_id,strategy,symbol,asset_class,qty,bar\n"
        b"ok1,A,SPY,etf,5,2024-05-02\n"
        b"bad\xff,A,SPY,etf,5,2024-05-02\n"
    )
    assert main(["intents", "submit", str(path), "--ledger", url, "--now", NOW]) == 1
    captured = capsys.readouterr()
    assert "row 2:" in captured.err
    assert "intent_id" in captured.err
    assert "1 intent(s) stored" in captured.out


def test_ledger_refusals_name_the_file_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger(url)
    ledger.register_strategies(["A"])
    ledger.close()
    first = tmp_path / "first.csv"
    first.write_text("intent_id,strategy,symbol,asset_class,qty,bar\nc1,A,SPY,etf,5,2024-05-02\n")
    assert main(["intents", "submit", str(first), "--ledger", url, "--now", NOW]) == 0
    second = tmp_path / "second.csv"
    second.write_text(
        "intent_id,strategy,symbol,asset_class,qty,bar\n"
        "x1,A,SPY,etf,nan,2024-05-02\n"
        "c1,A,SPY,etf,6,2024-05-02\n"
    )
    capsys.readouterr()
    assert main(["intents", "submit", str(second), "--ledger", url, "--now", NOW]) == 1
    assert "row 2: c1: conflict" in capsys.readouterr().err


@pytest.mark.parametrize(
    "value", ["1e400", "-1e400", "nan", "inf", "1" * 10_000_000, "1_000", "0x10"]
)
def test_hostile_returns_are_refused_rows(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    path = tmp_path / "returns.csv"
    path.write_text(
        "date,strategy,return\n2024-05-01,A,0.01\n"
        f"2024-05-01,B,{value}\n2024-05-01,{'C' * 300},0.1\n"
    )
    assert main(["returns", "submit", str(path), "--ledger", url]) == 1
    captured = capsys.readouterr()
    assert "row 2: 2024-05-01/B: invalid: return" in captured.err
    assert "row 3:" in captured.err
    assert "invalid: strategy" in captured.err
    assert len(captured.err) < 2000
    assert "1 return(s) stored" in captured.out
