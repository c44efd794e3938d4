"""The venue-halt asset check reads the ledger's reconciliations: fails while halted."""

from pathlib import Path

import dagster as dg

from assets.venues import venues_reconciled
from pipelines.definitions import defs
from resources.dagster_resources import LedgerResource
from resources.ledger import Ledger


def test_check_fails_while_a_venue_is_halted_and_passes_once_cleared(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    resource = LedgerResource(url=url)
    assert venues_reconciled(ledger=resource).passed
    ledger = Ledger(url)
    try:
        ledger.record_reconciliation(
            "alpaca",
            [{"kind": "unexpected_position", "key": "SPY", "venue": "5", "ledger": "0"}],
            source="test",
        )
        halted = venues_reconciled(ledger=resource)
        assert not halted.passed
        assert "alpaca" in (halted.description or "")
        assert "SPY" in str(halted.metadata["detail"].value)
        ledger.record_reconciliation("alpaca", [], source="test")
    finally:
        ledger.close()
    assert venues_reconciled(ledger=resource).passed


def test_check_is_registered_on_the_broker_sink() -> None:
    keys = set(defs().resolve_asset_graph().asset_check_keys)
    assert dg.AssetCheckKey(dg.AssetKey("submitted_orders"), "venues_reconciled") in keys
