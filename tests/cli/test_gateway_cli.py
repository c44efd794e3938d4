"""``allocator strategy add|rotate|revoke``, ``allocator operator token`` and ``allocator
serve``: tokens printed once, stored only as hashes; the gateway binds 127.0.0.1 by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from resources.ledger import Ledger


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_tokens_are_printed_once_alone_and_stored_only_as_hashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ledger.sqlite"
    url = f"sqlite:///{db}"
    code, out, _ = _run(capsys, "strategy", "add", "alpha", "--ledger", url)
    assert code == 0
    token = out.splitlines()[-1]
    assert len(token) == 43
    assert token.strip() == token
    assert out.count(token) == 1
    ledger = Ledger(url)
    try:
        owner = ledger.token_owner(token)
        assert owner is not None
        assert (owner.kind, owner.strategy) == ("strategy", "alpha")
        assert "alpha" in ledger.strategies()
    finally:
        ledger.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("ledger"))
    assert token.encode() not in raw  # only its SHA-256 is in the database
    code, _, err = _run(capsys, "strategy", "add", "alpha", "--ledger", url)
    assert code == 2
    assert "rotate" in err
    assert token not in err

    code, out, _ = _run(capsys, "strategy", "rotate", "alpha", "--ledger", url)
    rotated = out.splitlines()[-1]
    assert code == 0
    assert rotated != token
    code, out, _ = _run(capsys, "operator", "token", "--name", "dana", "--ledger", url)
    operator = out.splitlines()[-1]
    assert code == 0
    code, out, _ = _run(capsys, "strategy", "list", "--ledger", url)
    assert "'alpha': token live" in out
    assert "'dana'" in out
    for secret in (token, rotated, operator):
        assert secret not in out
    code, _, _ = _run(capsys, "strategy", "revoke", "alpha", "--ledger", url)
    assert code == 0
    ledger = Ledger(url)
    try:
        assert ledger.token_owner(token) is None  # rotated away
        assert ledger.token_owner(rotated) is None  # revoked
        found = ledger.token_owner(operator)
        assert found is not None
        assert (found.kind, found.strategy, found.label) == ("operator", None, "dana")
    finally:
        ledger.close()
    assert _run(capsys, "strategy", "rotate", "nobody", "--ledger", url)[0] == 2
    assert _run(capsys, "strategy", "add", " padded", "--ledger", url)[0] == 2


def test_serve_binds_loopback_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    assert main(["serve", "--ledger", url, "--no-launch"]) == 0
    assert main(["serve", "--ledger", url, "--no-launch", "--host", "0.0.0.0", "--port", "9"]) == 0
    assert [(c["host"], c["port"]) for c in calls] == [("127.0.0.1", 8787), ("0.0.0.0", 9)]
    assert main(["serve", "--ledger", url, "--port", "70000"]) == 2


def test_a_correction_from_the_command_line_is_journaled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    first, fixed = tmp_path / "r1.csv", tmp_path / "r2.csv"
    first.write_text("date,strategy,return\n2024-01-02,alpha,0.01\n", encoding="utf-8")
    fixed.write_text("date,strategy,return\n2024-01-02,alpha,0.02\n", encoding="utf-8")
    assert _run(capsys, "returns", "submit", str(first), "--ledger", url)[0] == 0
    assert _run(capsys, "returns", "submit", str(fixed), "--ledger", url)[0] == 1  # restated
    assert _run(capsys, "returns", "submit", str(fixed), "--correction", "--ledger", url)[0] == 0
    ledger = Ledger(url)
    try:
        (entry,) = ledger.corrections()
    finally:
        ledger.close()
    assert (entry["old_value"], entry["new_value"], entry["version"]) == (0.01, 0.02, 2)
    assert entry["corrected_by"] == "allocator returns submit"
