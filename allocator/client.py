"""The strategy gateway's Python client, for a strategy's bot (docs/decisions/0015).

One typed method per endpoint of ``allocator serve``::

    from allocator.client import GatewayClient, IntentIn

    with GatewayClient("http://127.0.0.1:8787", token) as gw:
        budget = gw.me()                          # capital, leverage, breaker, gross free, ...
        intent = IntentIn("bot-2024-06-03-1", "SPY", "etf", "10", "2024-06-03")
        answers = gw.submit_intents([intent])      # one answer per intent, in order
        for event in gw.events():                 # fills, refusals, bar settled, state changes
            ...

Retries are safe: ``POST /v1/intents`` is idempotent by intent id (a resubmitted id with the
same content is accepted again, never stored twice) and a return resubmitted with the same
value is unchanged, so the client retries a request whose answer it did not get (a connection
error, a timeout, 502/503/504) and one refused 429 (after its ``Retry-After``), up to
``retries`` times with exponential backoff. Any other 4xx is a :class:`GatewayError` at once.
:meth:`GatewayClient.events` reconnects after a dropped stream with ``Last-Event-ID``, so no
event is lost or repeated across a reconnect.

Quantities and money are :class:`~decimal.Decimal` (sent and received as decimal strings).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

__all__ = [
    "BarView",
    "Event",
    "Fill",
    "GatewayClient",
    "GatewayError",
    "IntentIn",
    "IntentResult",
    "Me",
    "Positions",
    "ReturnResult",
]

_RETRY_STATUS = frozenset({429, 502, 503, 504})


class GatewayError(Exception):
    """The gateway refused a request.

    ``status`` is the HTTP status (401, 403, 404, 413, 422, 429, ...) and ``detail`` the
    answer's detail (the limit or the field it names).
    """

    def __init__(self, status: int, detail: Any) -> None:
        """Keep the HTTP status and the answer's ``detail``."""
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class IntentIn:
    """One intent to submit (SPEC §7): ``qty`` signed base units (a Decimal or its text)."""

    intent_id: str
    symbol: str
    asset_class: str
    qty: Decimal | str
    bar: str

    def body(self) -> dict[str, str]:
        """Return the JSON object of ``POST /v1/intents`` (``qty`` as a decimal string)."""
        qty = self.qty if isinstance(self.qty, str) else format(self.qty, "f")
        return {
            "intent_id": self.intent_id,
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "qty": qty,
            "bar": self.bar,
        }


@dataclass(frozen=True, slots=True)
class IntentResult:
    """The gateway's answer for one intent: ``reason`` is ``None`` when accepted (stored)."""

    intent_id: str
    accepted: bool
    reason: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class ReturnResult:
    """The gateway's answer for one daily return (``key`` is ``date/strategy``)."""

    key: str
    accepted: bool
    reason: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Me:
    """The strategy's published budget and state (``GET /v1/me``).

    Attributes
    ----------
    strategy : str
        The strategy the token belongs to.
    published_at : str or None
        The session of the allocation these figures come from (``None``: none published).
    capital, max_leverage, multiplier : Decimal
        Published capital (account currency), the gross-notional cap per unit of it, and the
        breaker's multiplier (1, the half multiplier, or 0).
    breaker_state : str
        ``normal``, ``half`` or ``halted``.
    benched : bool
        Whether the correlation rule benched it (no entries).
    next_rebalance : str or None
        The next scheduled recompute of the base weights (a bench change comes earlier).
    gross_used, gross_free : Decimal
        Σ |position| × last reference price, and capital × max_leverage less it (>= 0).
    unpriced_symbols : tuple of str
        Held symbols with no reference price yet (not counted in ``gross_used``).
    """

    strategy: str
    published_at: str | None
    capital: Decimal
    max_leverage: Decimal
    multiplier: Decimal
    breaker_state: str
    benched: bool
    next_rebalance: str | None
    gross_used: Decimal
    gross_free: Decimal
    unpriced_symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Positions:
    """The strategy's virtual positions (signed base units) and cash."""

    positions: Mapping[str, Decimal]
    cash: Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """The strategy's share of a symbol's fill in a bar (``internal``: crossed in the book)."""

    bar: str
    symbol: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    cash: Decimal
    internal: bool


@dataclass(frozen=True, slots=True)
class BarView:
    """One bar as ``GET /v1/bars/{bar}`` shows it to the strategy.

    ``status`` is ``open``, ``sealed``, ``planned``, ``settled``, ``failed`` or
    ``abandoned``; ``intents`` the strategy's stored intents, ``refused`` its refused ones
    (mappings with ``intent_id``, ``reason``, ``detail``), ``fills`` its fills.
    """

    bar: str
    status: str
    intents: tuple[Mapping[str, str], ...]
    refused: tuple[Mapping[str, Any], ...]
    fills: tuple[Fill, ...]


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: ``event`` is ``fill``, ``refusal``, ``bar`` or ``state``."""

    event: str
    data: Mapping[str, Any]
    id: str = ""
    raw: str = field(default="", repr=False)


def _fill(d: Mapping[str, Any]) -> Fill:
    return Fill(
        bar=str(d["bar"]),
        symbol=str(d["symbol"]),
        qty=Decimal(d["qty"]),
        price=Decimal(d["price"]),
        fee=Decimal(d["fee"]),
        cash=Decimal(d["cash"]),
        internal=bool(d["internal"]),
    )


class GatewayClient:
    """A strategy's (or the operator's) connection to the gateway at ``base_url``.

    Parameters
    ----------
    base_url : str
        E.g. ``http://127.0.0.1:8787``.
    token : str
        The bearer token from ``allocator strategy add`` (or ``operator token``).
    timeout_s : float, default 10
        Per request.
    retries : int, default 3
        Extra attempts for a request whose answer was lost or refused 429/502/503/504.
    backoff_s : float, default 0.2
        The first retry's wait, doubled each time (or the answer's ``Retry-After``).
    transport : httpx.BaseTransport, optional
        For tests.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Open the HTTP connection pool (nothing is sent yet)."""
        if retries < 0 or backoff_s < 0:
            raise ValueError(f"retries and backoff_s must be >= 0, got {retries}, {backoff_s}")
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
        )
        self._retries = retries
        self._backoff = backoff_s

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> GatewayClient:
        """Use as a context manager (closes on exit)."""
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection pool."""
        self.close()

    # -- the transport --------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        wait = self._backoff
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.TransportError, httpx.TimeoutException):
                if last:
                    raise
                time.sleep(wait)
                wait *= 2
                continue
            if response.status_code in _RETRY_STATUS and not last:
                after = response.headers.get("Retry-After", "")
                time.sleep(float(after) if after.isdigit() else wait)
                wait *= 2
                continue
            if response.status_code >= 400:
                try:
                    detail = response.json().get("detail")
                except (ValueError, AttributeError):
                    detail = response.text[:500]
                raise GatewayError(response.status_code, detail)
            return response.json()
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the endpoints --------------------------------------------------------------------

    def submit_intents(self, intents: Sequence[IntentIn]) -> list[IntentResult]:
        """``POST /v1/intents``: one answer per intent, in order (safe to retry)."""
        answer = self._request("POST", "/v1/intents", json=[i.body() for i in intents])
        return [
            IntentResult(
                intent_id=a["intent_id"],
                accepted=a["accepted"],
                reason=a["reason"],
                detail=a["detail"],
            )
            for a in answer
        ]

    def submit_returns(
        self,
        returns: Sequence[tuple[str, float | None]] | Sequence[Mapping[str, Any]],
        *,
        correction: bool = False,
        reason: str = "",
    ) -> list[ReturnResult]:
        """``POST /v1/returns``: daily returns, one answer each.

        ``returns`` are ``(date, value)`` pairs of this strategy, or mappings with ``date``,
        ``value`` and (the operator's) ``strategy``; a correction takes the operator's token
        and a ``reason``.
        """
        rows = [
            dict(r) if isinstance(r, Mapping) else {"date": r[0], "value": r[1]} for r in returns
        ]
        body = {"returns": rows, "correction": correction, "reason": reason}
        answer = self._request("POST", "/v1/returns", json=body)
        return [
            ReturnResult(
                key=a["key"], accepted=a["accepted"], reason=a["reason"], detail=a["detail"]
            )
            for a in answer
        ]

    def me(self) -> Me:
        """``GET /v1/me``: the published budget and state."""
        d = self._request("GET", "/v1/me")
        return Me(
            strategy=d["strategy"],
            published_at=d["published_at"],
            capital=Decimal(d["capital"]),
            max_leverage=Decimal(d["max_leverage"]),
            multiplier=Decimal(d["multiplier"]),
            breaker_state=d["breaker_state"],
            benched=bool(d["benched"]),
            next_rebalance=d["next_rebalance"],
            gross_used=Decimal(d["gross_used"]),
            gross_free=Decimal(d["gross_free"]),
            unpriced_symbols=tuple(d["unpriced_symbols"]),
        )

    def positions(self) -> Positions:
        """``GET /v1/positions``."""
        d = self._request("GET", "/v1/positions")
        return Positions(
            positions={m: Decimal(q) for m, q in d["positions"].items()},
            cash=Decimal(d["cash"]),
        )

    def fills(self, since: str = "") -> list[Fill]:
        """``GET /v1/fills?since=BAR``: the fills of the bars after ``since`` (all: empty)."""
        params = {"since": since} if since else None
        return [_fill(d) for d in self._request("GET", "/v1/fills", params=params)]

    def bar(self, bar: str) -> BarView:
        """``GET /v1/bars/{bar}``."""
        d = self._request("GET", f"/v1/bars/{quote(bar, safe='')}")
        return BarView(
            bar=d["bar"],
            status=d["status"],
            intents=tuple(d["intents"]),
            refused=tuple(d["refused"]),
            fills=tuple(_fill(f) for f in d["fills"]),
        )

    def events(
        self, *, last_event_id: str | None = None, reconnect: bool = True
    ) -> Iterator[Event]:
        """``GET /v1/events``: the strategy's events as they happen (blocks between them).

        After a dropped connection it reconnects (``reconnect``) from the last event's id.
        Stop by breaking out of the loop.
        """
        cursor = last_event_id
        while True:
            headers = {"Accept": "text/event-stream"}
            if cursor:
                headers["Last-Event-ID"] = cursor
            try:
                with self._http.stream(
                    "GET", "/v1/events", headers=headers, timeout=httpx.Timeout(None, connect=10)
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        try:
                            detail = response.json().get("detail")
                        except (ValueError, AttributeError):
                            detail = response.text[:500]
                        raise GatewayError(response.status_code, detail)
                    for event in _parse_sse(response.iter_lines()):
                        if event.id:
                            cursor = event.id
                        if event.event:
                            yield event
            except (httpx.TransportError, httpx.TimeoutException):
                if not reconnect:
                    raise
                time.sleep(self._backoff)
                continue
            if not reconnect:
                return


def _parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Parse a ``text/event-stream`` into events (the HTML standard's field rules).

    Comments are skipped; an event without ``event:`` but with an ``id:`` is yielded with an
    empty name (its id moves the cursor).
    """
    name, ident = "", ""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data or ident:
                raw = "\n".join(data)
                parsed = json.loads(raw) if raw else {}
                yield Event(
                    event=name,
                    data=parsed if isinstance(parsed, dict) else {"value": parsed},
                    id=ident,
                    raw=raw,
                )
            name, data, ident = "", [], ""
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
        elif key == "id":
            ident = value
