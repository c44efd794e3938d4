"""The alert hook's two sensors (docs/spec-12-risk.md §12.8): state changes and run failures.

* ``risk_alert_sensor`` reads the ledger's trading-state journal after its cursor (the last
  row id it handled): every new row (an operator's ``halt``, ``reduce-only``, ``resume``, the
  kill switch tripping) is posted to the webhook as one Slack-compatible message, and the
  ``trading_state_ok`` check is evaluated (runless) so the UI shows it at once. The cursor
  moves only after every post succeeded: a webhook that fails fails the tick, which is retried.
* ``run_failure_alert`` posts every failed run of the code location (job, run id, the error).

The webhook is ``ALLOCATOR_ALERT_WEBHOOK`` (the ``alerts`` resource); without one nothing is
posted, and the state sensor still evaluates the check. Both sensors start as the bar sensor
does (``ALLOCATOR_SENSORS_RUNNING``).
"""

from __future__ import annotations

import dagster as dg

from allocator.execution.risk import StateChange
from allocator.settings import Settings
from assets.risk import trading_state_evaluation
from resources.alerts import AlertWebhook, slack_payload
from resources.dagster_resources import LedgerResource

__all__ = ["build_alert_sensors", "change_payload", "failure_payload"]

MAX_CHANGES = 100
"""The most journal rows one evaluation handles (the rest wait for the next tick)."""


def change_payload(change: StateChange) -> dict[str, object]:
    """The message of one trading-state change."""
    scope = "the book" if change.scope == "book" else f"venue {change.scope}"
    return slack_payload(
        f"Allocator: {scope} is now {change.state}",
        [
            f"by {change.by} ({change.source}) at {change.at.isoformat()}",
            f"reason: {change.reason}",
            *([f"bar: {change.bar}"] if change.bar else []),
        ],
    )


def failure_payload(job: str, run_id: str, error: str) -> dict[str, object]:
    """The message of one failed run."""
    return slack_payload(
        f"Allocator: run of {job} failed", [f"run {run_id}", f"error: {error[:1500]}"]
    )


def _status(settings: Settings) -> dg.DefaultSensorStatus:
    return (
        dg.DefaultSensorStatus.RUNNING
        if settings.sensors_running
        else dg.DefaultSensorStatus.STOPPED
    )


def build_alert_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The two alert sensors, started as ``settings.sensors_running`` says."""

    @dg.sensor(
        name="risk_alert_sensor",
        minimum_interval_seconds=5,
        default_status=_status(settings),
        description=(
            "Posts every change of the book's or a venue's trading state (halt, reduce-only, "
            "resume, the kill switch) to the alert webhook and evaluates trading_state_ok."
        ),
    )
    def risk_alert_sensor(
        context: dg.SensorEvaluationContext, ledger: LedgerResource, alerts: AlertWebhook
    ) -> dg.SensorResult | dg.SkipReason:
        after = int(context.cursor or 0)
        with ledger.open() as store:
            changes = store.state_changes(after=after, limit=MAX_CHANGES)
            status = store.trading_status() if changes else None
        if not changes or status is None:
            return dg.SkipReason(f"no trading-state change after journal row {after}")
        if alerts.enabled:
            for change in changes:
                alerts.post(change_payload(change))
        return dg.SensorResult(
            cursor=str(changes[-1].id),
            asset_events=[trading_state_evaluation(status)],
        )

    @dg.run_failure_sensor(
        name="run_failure_alert",
        default_status=_status(settings),
        description="Posts every failed run (job, run id, error) to the alert webhook.",
    )
    def run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertWebhook) -> None:
        if not alerts.enabled:
            return
        event = context.failure_event
        error = event.message or ""
        alerts.post(
            failure_payload(context.dagster_run.job_name, context.dagster_run.run_id, error)
        )

    return [risk_alert_sensor, run_failure_alert]
