"""The alert hook: Slack-compatible JSON posted to a webhook (docs/spec-12-risk.md §12.8).

:func:`slack_payload` builds the message (``text`` for any Slack-compatible receiver, plus a
``blocks`` section in Slack's ``mrkdwn``); :class:`AlertWebhook` posts it with ``httpx`` to the
URL of ``ALLOCATOR_ALERT_WEBHOOK`` (:attr:`allocator.settings.Settings.alert_webhook`). The
URL is a secret (a Slack incoming webhook carries its token): it is never logged or shown. A
post that fails raises :class:`AlertError` with the status or the error, so the sensor that
posted fails its tick loudly (and retries it: its cursor does not move).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
import httpx

__all__ = ["AlertError", "AlertWebhook", "slack_payload"]


class AlertError(RuntimeError):
    """The webhook did not take the alert (an HTTP error status, a timeout, no connection)."""


def slack_payload(title: str, lines: Sequence[str] = ()) -> dict[str, Any]:
    """Return a Slack-compatible message: ``text`` (title and lines) and one ``blocks`` section."""
    body = "\n".join([f"*{title}*", *lines])
    return {
        "text": "\n".join([title, *lines]),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": body}}],
    }


class AlertWebhook(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Posts alerts to ``url`` (empty: alerts are off); ``timeout_s`` per post."""

    url: str = ""
    timeout_s: float = 10.0

    @property
    def enabled(self) -> bool:
        """Whether a webhook URL is configured."""
        return bool(self.url)

    def post(self, payload: dict[str, Any]) -> None:
        """POST ``payload`` as JSON; raise :class:`AlertError` unless the receiver says 2xx."""
        if not self.url:
            raise AlertError("no alert webhook is configured (ALLOCATOR_ALERT_WEBHOOK)")
        try:
            reply = httpx.post(self.url, json=payload, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise AlertError(
                f"the alert webhook could not be reached: {type(exc).__name__}"
            ) from None
        if not 200 <= reply.status_code < 300:
            raise AlertError(f"the alert webhook answered HTTP {reply.status_code}")
