"""The alert hook against a local HTTP receiver (docs/spec-12-risk.md §12.8).

The state-change sensor posts one Slack-compatible message per trading-state change and
evaluates ``trading_state_ok``; the run-failure sensor posts each failed run; a receiver that
answers an error fails the tick and the cursor does not move.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from allocator.settings import Settings
from allocator.states import TradingState
from assets.risk import trading_state_ok
from pipelines.alerts import build_alert_sensors
from resources.alerts import AlertError, AlertWebhook
from resources.dagster_resources import LedgerResource
from resources.ledger import Ledger


class _Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                return None

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    try:
        yield r
    finally:
        r.close()


def _sensors() -> dict[str, dg.SensorDefinition]:
    return {s.name: s for s in build_alert_sensors(Settings())}


def test_state_changes_are_posted_once_and_the_check_evaluated(
    tmp_path: Path, receiver: _Receiver
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    store = Ledger(url)
    try:
        store.set_trading_state(
            TradingState.HALTED, by="ops", reason="venue outage", venue="alpaca"
        )
        store.set_trading_state(TradingState.REDUCING, by="kill_switch", reason="drawdown")
    finally:
        store.close()
    sensor = _sensors()["risk_alert_sensor"]
    resources = {"ledger": LedgerResource(url=url), "alerts": AlertWebhook(url=receiver.url)}
    with dg.build_sensor_context(resources=resources) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert result.cursor == "2"
    texts = [b["text"] for b in receiver.bodies]
    assert texts[0].startswith("Allocator: venue alpaca is now halted")
    assert "reason: venue outage" in texts[0]
    assert texts[1].startswith("Allocator: the book is now reducing")
    assert receiver.bodies[0]["blocks"][0]["text"]["type"] == "mrkdwn"
    (evaluation,) = result.asset_events
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    assert evaluation.passed is False
    assert evaluation.check_name == "trading_state_ok"
    # Nothing new after the cursor: nothing posted again.
    with dg.build_sensor_context(resources=resources, cursor="2") as context:
        assert isinstance(sensor(context), dg.SkipReason)
    assert len(receiver.bodies) == 2
    # A receiver that refuses fails the tick (the cursor stays where it was).
    store = Ledger(url)
    try:
        store.set_trading_state(TradingState.ACTIVE, by="ops", reason="fixed")
    finally:
        store.close()
    receiver.status = 500
    with (
        dg.build_sensor_context(resources=resources, cursor="2") as context,
        pytest.raises(AlertError, match="HTTP 500"),
    ):
        sensor(context)
    assert url not in str(receiver.bodies)  # the webhook's URL is never in a message


def test_the_trading_state_check_fails_while_the_book_is_not_active(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    resource = LedgerResource(url=url)
    assert trading_state_ok(ledger=resource).passed
    store = Ledger(url)
    try:
        store.set_trading_state(TradingState.REDUCING, by="ops", reason="check")
        result = trading_state_ok(ledger=resource)
        assert not result.passed
        assert "the book is reducing" in (result.description or "")
        store.set_trading_state(TradingState.ACTIVE, by="ops", reason="done")
        store.set_trading_state(TradingState.HALTED, by="ops", reason="down", venue="ccxt")
        result = trading_state_ok(ledger=resource)
        assert not result.passed
        assert "ccxt halted" in (result.description or "")
    finally:
        store.close()


@dg.op
def _fails() -> None:
    raise RuntimeError("the broker is down")


@dg.job
def _failing_job() -> None:
    _fails()


def test_a_failed_run_is_posted(receiver: _Receiver) -> None:
    sensor = _sensors()["run_failure_alert"]
    with dg.instance_for_test() as instance:
        result = _failing_job.execute_in_process(instance=instance, raise_on_error=False)
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        failure = next(
            e for e in result.all_events if e.event_type is dg.DagsterEventType.RUN_FAILURE
        )
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=failure,
            resources={"alerts": AlertWebhook(url=receiver.url)},
        ).for_run_failure()
        sensor(context)
    (body,) = receiver.bodies
    assert body["text"].startswith("Allocator: run of _failing_job failed")
    assert result.run_id in body["text"]
