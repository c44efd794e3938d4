"""The pipeline's steps build their venues from the run's configuration file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import assets
from allocator.execution.orders import Venue
from assets.venues import bar_venues
from resources.brokers.paper.resource import PaperBrokerResource
from resources.dagster_resources import AllocatorSettings
from resources.ledger import Ledger


def test_the_config_files_crypto_exchange_reaches_the_ccxt_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "allocator.toml"
    config.write_text('[routing]\ncrypto_exchange = "bybit"\n')
    for name, value in {
        "CCXT_MODE": "paper",
        "CCXT_API_KEY": "k",
        "CCXT_SECRET": "s",
        "CCXT_BASE_URL": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CCXT_EXCHANGE", raising=False)
    store = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        settings = AllocatorSettings(config_path=str(config))
        venues = bar_venues(settings, store, PaperBrokerResource())
        assert venues[Venue.CCXT].exchange_id == "bybit"  # type: ignore[attr-defined]
        default = bar_venues(AllocatorSettings(), store, PaperBrokerResource())
        assert default[Venue.CCXT].exchange_id == "binance"  # type: ignore[attr-defined]
    finally:
        store.close()


def test_every_step_builds_its_venues_through_bar_venues() -> None:
    """No asset or check calls the registry without the run's settings."""
    offenders = []
    for path in sorted(Path(assets.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in ("pipeline_venues", "build_venue", "operator_venue") and not any(
                k.arg == "settings" for k in node.keywords
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
