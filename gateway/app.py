"""The strategy gateway's HTTP API: :func:`create_app` (FastAPI; ``allocator serve`` runs it on
uvicorn). docs/decisions/0015-strategy-gateway.md; the OpenAPI page is at ``/docs``.

Every ``/v1`` endpoint takes ``Authorization: Bearer <token>``; the token decides who calls
(:meth:`resources.ledger.Ledger.token_owner`): a strategy, or the operator. No token, an unknown
or a revoked one is 401; a strategy's token on an operator's action, the operator's on a
strategy's, or a body that names another strategy is 403; a body the schema refuses is 422 with
the field's location (``["body", 0, "qty"]``); a body over ``[gateway] max_body_bytes`` or a
list over ``max_rows`` is 413, and more than ``rate_per_s`` (``burst`` at once) requests of one
caller is 429, each naming its limit. A refused request stores nothing.

``POST /v1/intents`` goes through :meth:`~resources.ledger.Ledger.submit_intent_rows`, the path
of ``allocator intents submit``: the same checks, the same ``Reason`` for each refused row
(``late`` for a sealed bar, ``duplicate`` for one id twice in a request with other content,
``conflict`` for an id stored with other content), idempotent by intent id, and committed before
the reply. When intents were stored the :class:`~gateway.launch.BarLauncher` is told, and
launches the bar's run if the bar is complete.

Error bodies never repeat the ``Authorization`` header, and the gateway logs no header.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allocator.execution.inbox import MAX_TEXT, ReturnRow, check_returns
from allocator.execution.instruments import DEFAULT_INSTRUMENTS, load_instruments
from allocator.execution.records import parse_bar
from allocator.settings import Settings
from gateway.heap import freeze_long_lived
from gateway.launch import BarLauncher
from gateway.limits import RateLimiter
from gateway.views import exposure, multiplier_of, next_rebalance
from resources.ledger import Ledger
from resources.ledger.gateway import TokenOwner

__all__ = ["create_app"]

API = "/v1"
_bearer = HTTPBearer(auto_error=False, description="a strategy's or the operator's token")


# -- the bodies -----------------------------------------------------------------------------


class IntentIn(BaseModel):
    """One intent: the CSV's fields less ``strategy`` (the token decides it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    intent_id: str = Field(max_length=10_000)
    symbol: str = Field(max_length=10_000)
    asset_class: str = Field(max_length=10_000)
    qty: str = Field(max_length=10_000, description="a decimal string, e.g. '10' or '-0.5'")
    bar: str = Field(max_length=10_000)
    strategy: str | None = Field(
        default=None, max_length=10_000, description="optional; must be the token's strategy"
    )


class IntentOut(BaseModel):
    intent_id: str
    accepted: bool
    reason: str | None
    detail: str


class ReturnIn(BaseModel):
    """One daily return (``value`` null: missing)."""

    model_config = ConfigDict(extra="forbid")
    date: str = Field(max_length=10_000)
    value: float | None = Field(allow_inf_nan=False)
    strategy: str | None = Field(
        default=None,
        max_length=10_000,
        description="the token's strategy; the operator's names one",
    )


class ReturnsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    returns: list[ReturnIn]
    correction: bool = False
    reason: str = Field(default="", max_length=10_000, description="why (a correction needs it)")


class ReturnOut(BaseModel):
    key: str
    accepted: bool
    reason: str | None
    detail: str


class Me(BaseModel):
    strategy: str
    published_at: str | None
    capital: str
    max_leverage: str
    multiplier: str
    breaker_state: str
    benched: bool
    next_rebalance: str | None
    gross_used: str
    gross_free: str
    unpriced_symbols: list[str]


# -- the app --------------------------------------------------------------------------------


class _State:
    """What the app holds for its life: the ledger, the symbol table, the limiter, the
    launcher."""

    def __init__(self, settings: Settings, launcher: BarLauncher | None) -> None:
        self.settings = settings
        self.ledger = Ledger(settings.ledger_url)
        self.instruments = (
            load_instruments(settings.instruments) if settings.instruments else DEFAULT_INSTRUMENTS
        )
        gw = settings.config.gateway
        self.limiter = RateLimiter(gw.rate_per_s, gw.burst)
        self.launcher = launcher


class BodyLimit:
    """Refuse a request body over ``limit`` bytes with 413 before the app reads it whole: a
    declared ``Content-Length`` at once, a chunked body as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, limit: int, detail: str) -> None:
        self.app = app
        self.limit = limit
        self.detail = detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await JSONResponse({"detail": self.detail}, status_code=413)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise StarletteHTTPException(status_code=413, detail=self.detail)
            return message

        await self.app(scope, limited, send)


def create_app(
    settings: Settings,
    *,
    launcher: BarLauncher | Literal["auto"] | None = "auto",
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The gateway on ``settings``' ledger and ``[gateway]`` limits.

    ``launcher``: ``"auto"`` starts a :class:`~gateway.launch.BarLauncher` on the instance of
    ``DAGSTER_HOME`` (off without it); ``None`` launches nothing (the sensor does); or one
    given. ``clock`` is the instant a bar's age is judged against (``stale_bar``): the wall
    clock, unless a replay (the demo's history) gives its own. The app opens the ledger
    (migrating it) when it starts and closes both at shutdown.
    """
    gw = settings.config.gateway
    now_of = clock if clock is not None else (lambda: datetime.now(UTC))
    holder: dict[str, _State] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        chosen = BarLauncher(settings) if launcher == "auto" else launcher
        state = _State(settings, chosen)
        holder["state"] = state
        if chosen is not None:
            chosen.start()
        freeze_long_lived()  # the start-up heap, out of every full collection (gateway/heap.py)
        try:
            yield
        finally:
            if chosen is not None:
                await anyio.to_thread.run_sync(chosen.close)
            state.ledger.close()

    app = FastAPI(
        title="Allocator strategy gateway",
        version="1",
        description="The door for strategies' bots: intents, returns, budget, fills, events.",
        lifespan=lifespan,
    )
    too_large = f"the request body is larger than [gateway] max_body_bytes = {gw.max_body_bytes}"
    app.add_middleware(BodyLimit, limit=gw.max_body_bytes, detail=too_large)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # the field's location and the problem; never the input itself (it may be large)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    def state() -> _State:
        return holder["state"]

    def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        st: Annotated[_State, Depends(state)],
    ) -> TokenOwner:
        unauthorized = HTTPException(
            status_code=401,
            detail="a valid token is required: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise unauthorized
        token = credentials.credentials
        if not token or len(token) > 200:
            raise unauthorized
        owner = st.ledger.token_owner(token)
        if owner is None:
            raise unauthorized
        key = f"operator/{owner.label}" if owner.is_operator else f"strategy/{owner.strategy}"
        wait = st.limiter.take(key)
        if wait > 0:
            raise HTTPException(
                status_code=429,
                detail=(
                    f"more than [gateway] rate_per_s = {gw.rate_per_s:g} requests per second "
                    f"(burst {gw.burst}) for this caller; retry in {wait:.2f} s"
                ),
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            )
        return owner

    def strategy_of(owner: Annotated[TokenOwner, Depends(caller)]) -> str:
        if owner.strategy is None:
            raise HTTPException(status_code=403, detail="this endpoint takes a strategy's token")
        return owner.strategy

    def rows_limit(count: int) -> None:
        if count > gw.max_rows:
            raise HTTPException(
                status_code=413,
                detail=f"{count} rows: more than [gateway] max_rows = {gw.max_rows} per request",
            )

    # -- intents ----------------------------------------------------------------------------

    @app.post(f"{API}/intents", response_model=list[IntentOut], tags=["intents"])
    def post_intents(
        body: list[IntentIn],
        strategy: Annotated[str, Depends(strategy_of)],
        st: Annotated[_State, Depends(state)],
    ) -> Response:
        """Submit a batch of intents for one or more bars: one answer per intent, in order.
        Accepted rows are in the ledger before this returns; resubmitting an id is harmless."""
        rows_limit(len(body))
        for number, item in enumerate(body):
            if item.strategy is not None and item.strategy != strategy:
                raise HTTPException(
                    status_code=403,
                    detail=f"row {number}: strategy is not the token's: a token acts for its "
                    "own strategy only",
                )
        rows = [
            (
                number,
                {
                    "intent_id": item.intent_id,
                    "strategy": strategy,
                    "symbol": item.symbol,
                    "asset_class": item.asset_class,
                    "qty": item.qty,
                    "bar": item.bar,
                },
            )
            for number, item in enumerate(body, start=1)
        ]
        report, refused = st.ledger.submit_intent_rows(
            rows,
            f"gateway/{strategy}"[:200],
            execution=st.settings.config.execution,
            instruments=st.instruments,
            now=now_of(),
            strategies=(strategy,),  # the token's: registered (no listing of every strategy)
        )
        by_row = {r.row: r for r in refused}
        by_key = {r.key: r for r in report.refused}
        out = []
        for number, row in rows:
            refusal = by_row.get(number) or by_key.get(row["intent_id"])
            shown = row["intent_id"][: MAX_TEXT["intent_id"]]
            if refusal is None:
                out.append(
                    {"intent_id": shown, "accepted": True, "reason": None, "detail": "stored"}
                )
            else:
                out.append(
                    {
                        "intent_id": shown,
                        "accepted": False,
                        "reason": refusal.reason.value,
                        "detail": refusal.detail,
                    }
                )
        if report.accepted and st.launcher is not None:
            st.launcher.notify()
        # IntentOut's shape, serialised once: FastAPI would validate 200 models again
        return Response(json.dumps(out, separators=(",", ":")), media_type="application/json")

    # -- returns ----------------------------------------------------------------------------

    @app.post(f"{API}/returns", response_model=list[ReturnOut], tags=["returns"])
    def post_returns(
        body: ReturnsIn,
        owner: Annotated[TokenOwner, Depends(caller)],
        st: Annotated[_State, Depends(state)],
    ) -> list[ReturnOut]:
        """Submit daily returns (``date`` YYYY-MM-DD, ``value`` a fraction). A settled
        session, or a date before this strategy's last stored return, is refused. A
        correction (``correction: true`` with a ``reason``) takes the operator's token."""
        rows_limit(len(body.returns))
        if body.correction and not owner.is_operator:
            raise HTTPException(status_code=403, detail="a correction takes the operator's token")
        if body.correction and not body.reason.strip():
            raise HTTPException(status_code=422, detail="a correction needs a reason")
        raw = []
        for number, item in enumerate(body.returns):
            if owner.is_operator:
                if not item.strategy:
                    raise HTTPException(
                        status_code=422, detail=f"returns[{number}].strategy: the operator names it"
                    )
                name = item.strategy
            else:
                assert owner.strategy is not None
                if item.strategy is not None and item.strategy != owner.strategy:
                    raise HTTPException(
                        status_code=403,
                        detail=f"returns[{number}]: strategy is not the token's",
                    )
                name = owner.strategy
            value = "" if item.value is None else repr(item.value)
            raw.append((number + 1, {"date": item.date, "strategy": name, "return": value}))
        if owner.is_operator:
            known = set(st.ledger.strategies())
            unknown = [r["strategy"] for _, r in raw if r["strategy"] not in known]
            if unknown:
                raise HTTPException(
                    status_code=422,
                    detail=f"returns: strategy {unknown[0][:200]!r} is not registered",
                )
        rows, refused = check_returns(raw, "gateway")
        report = st.ledger.submit_strategy_returns(
            _numbered(rows, raw),
            correction=body.correction,
            by=f"operator:{owner.label}" if owner.is_operator else f"strategy:{owner.strategy}",
            why=body.reason,
        )
        return _return_answers(raw, refused, report.refused)

    # -- reads ------------------------------------------------------------------------------

    @app.get(f"{API}/me", response_model=Me, tags=["state"])
    def get_me(
        strategy: Annotated[str, Depends(strategy_of)], st: Annotated[_State, Depends(state)]
    ) -> Me:
        """This strategy's published budget and state, the next scheduled rebalance and its
        gross exposure used and free at the last reference prices."""
        cfg = st.settings.config
        row = st.ledger.latest_allocation(strategy)
        capital = row.capital if row is not None else Decimal(0)
        breaker = row.breaker_state if row is not None else "normal"
        benched = bool(row.benched) if row is not None else False
        held, _ = st.ledger.strategy_positions(strategy)
        prices = st.ledger.last_reference_prices(sorted(held))
        used, free, unpriced = exposure(held, prices, capital, cfg.execution.max_leverage)
        last = st.ledger.last_rebalance()
        nxt = next_rebalance(last, cfg.sizing.rebalance_every, cfg.calendar.name) if last else None
        return Me(
            strategy=strategy,
            published_at=row.date if row is not None else None,
            capital=_text(capital),
            max_leverage=_text(cfg.execution.max_leverage),
            multiplier=_text(multiplier_of(breaker, cfg.breaker.half_multiplier)),
            breaker_state=breaker,
            benched=benched,
            next_rebalance=nxt,
            gross_used=_text(used),
            gross_free=_text(free),
            unpriced_symbols=unpriced,
        )

    @app.get(f"{API}/positions", tags=["state"])
    def get_positions(
        strategy: Annotated[str, Depends(strategy_of)], st: Annotated[_State, Depends(state)]
    ) -> dict[str, Any]:
        """This strategy's virtual positions (signed base units) and cash, decimal strings."""
        held, cash = st.ledger.strategy_positions(strategy)
        return {
            "strategy": strategy,
            "positions": {m: _text(q) for m, q in sorted(held.items())},
            "cash": _text(cash),
        }

    @app.get(f"{API}/fills", tags=["state"])
    def get_fills(
        strategy: Annotated[str, Depends(strategy_of)],
        st: Annotated[_State, Depends(state)],
        since: Annotated[str, Query(max_length=64, description="a bar: fills after it")] = "",
    ) -> list[dict[str, Any]]:
        """This strategy's fills (virtual: its share of the book's) of the bars after
        ``since``."""
        if since:
            since = _bar_key(since, "since")
        return [_fill(r) for r in st.ledger.strategy_fills(strategy, since)]

    @app.get(f"{API}/bars/{{bar}}", tags=["state"])
    def get_bar(
        bar: str,
        strategy: Annotated[str, Depends(strategy_of)],
        st: Annotated[_State, Depends(state)],
    ) -> dict[str, Any]:
        """A bar's status and this strategy's accepted and refused intents and fills in it."""
        key = _bar_key(bar, "bar")
        parsed = parse_bar(key)
        status = st.ledger.bar_status(parsed)
        intents = st.ledger.strategy_intents(strategy, parsed)
        refused = [
            *st.ledger.strategy_refusals(strategy, bar=parsed),
            *st.ledger.strategy_cuts(strategy, parsed),
        ]
        fills = [_fill(r) for r in st.ledger.strategy_fills(strategy, bar=parsed)]
        if status is not None:
            state_text = status.state.value
        elif st.ledger.bar_done(parsed):
            state_text = "settled"
        else:
            state_text = "open"  # collecting intents (not sealed)
        return {
            "bar": key,
            "status": state_text,
            "intents": [
                {
                    "intent_id": i.intent_id,
                    "symbol": i.symbol,
                    "asset_class": i.asset_class.value,
                    "qty": _text(i.qty),
                }
                for i in intents
            ],
            "refused": [_refusal(r) for r in refused],
            "fills": fills,
        }

    @app.get(f"{API}/events", response_class=EventSourceResponse, tags=["events"])
    async def get_events(
        request: Request,
        strategy: Annotated[str, Depends(strategy_of)],
        st: Annotated[_State, Depends(state)],
        last_event_id: Annotated[str | None, Header(max_length=400)] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        """Server-sent events of this strategy: ``fill``, ``refusal`` (late, or cut by
        gating), ``bar`` (a bar settled), ``state`` (benched, readmitted, breaker). Each
        event's ``id`` is the stream's cursor: send it back as ``Last-Event-ID`` to resume."""
        resumed = _parse_cursor(last_event_id)
        cursor: Cursor = (
            resumed
            if resumed is not None
            else await anyio.to_thread.run_sync(st.ledger.event_cursor)
        )
        yield ServerSentEvent(comment="connected", id=_cursor_text(cursor), retry=1000)
        quiet = 0.0
        poll = gw.events_poll_s
        while not await request.is_disconnected():
            cursor, events = await anyio.to_thread.run_sync(_poll, st.ledger, strategy, cursor)
            for event in events:
                yield event
            if events:
                quiet = 0.0
            else:
                quiet += poll
                if quiet >= 15:
                    quiet = 0.0
                    yield ServerSentEvent(comment="keep-alive")
            await asyncio.sleep(poll)

    return app


# -- helpers --------------------------------------------------------------------------------


def _text(value: Decimal) -> str:
    """A decimal as plain text without exponent or trailing zeros (``'10'``, ``'-0.5'``)."""
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")


def _bar_key(text: str, name: str) -> str:
    try:
        return parse_bar(text).key
    except ValueError as exc:
        raise HTTPException(
            status_code=422,
            detail=[{"loc": ["path" if name == "bar" else "query", name], "msg": str(exc)}],
        ) from None


def _fill(r: Any) -> dict[str, Any]:
    return {
        "bar": r.bar,
        "symbol": r.symbol,
        "qty": _text(r.qty),
        "price": _text(r.price),
        "fee": _text(r.fee),
        "cash": _text(r.cash),
        "internal": bool(r.internal),
    }


def _refusal(r: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "intent_id": r.intent_id,
        "bar": r.bar,
        "reason": r.reason,
        "detail": r.detail,
    }
    if r.requested_qty is not None:
        out["requested_qty"] = _text(r.requested_qty)
        out["accepted_qty"] = _text(r.accepted_qty)
    return out


def _numbered(rows: list[ReturnRow], raw: list[tuple[int, dict[str, str]]]) -> list[ReturnRow]:
    """The checked rows in request order (the checks keep one row per (date, strategy))."""
    order = {(r["date"].strip(), r["strategy"].strip()): n for n, r in reversed(raw)}
    return sorted(rows, key=lambda r: order.get((r.date, r.strategy), 0))


def _return_answers(
    raw: list[tuple[int, dict[str, str]]], checked: list[Any], stored: Any
) -> list[ReturnOut]:
    by_row = {r.row: r for r in checked}
    by_key = {r.key: r for r in stored}
    out = []
    for number, row in raw:
        key = f"{row['date'][:40]}/{row['strategy'][:40]}"
        refusal = by_row.get(number) or by_key.get(f"{row['date']}/{row['strategy']}")
        if refusal is None:
            out.append(ReturnOut(key=key, accepted=True, reason=None, detail="stored"))
        else:
            out.append(
                ReturnOut(
                    key=key, accepted=False, reason=refusal.reason.value, detail=refusal.detail
                )
            )
    return out


Cursor = tuple[str, int, int]


def _cursor_text(cursor: Cursor) -> str:
    return json.dumps(list(cursor), separators=(",", ":"))


def _parse_cursor(text: str | None) -> Cursor | None:
    if not text:
        return None
    try:
        bar, refusal, event = json.loads(text)
        if isinstance(bar, str) and isinstance(refusal, int) and isinstance(event, int):
            return (bar, refusal, event)
    except (ValueError, TypeError):
        pass
    return None


_STATE_KIND = {"bench": "benched", "readmit": "readmitted", "breaker": "breaker"}


def _poll(ledger: Ledger, strategy: str, cursor: Cursor) -> tuple[Cursor, list[ServerSentEvent]]:
    """The stream's new events since ``cursor`` and the cursor after them (one look)."""
    bar_cursor, refusal_cursor, event_cursor = cursor
    events: list[ServerSentEvent] = []

    def emit(kind: str, data: dict[str, Any]) -> None:
        events.append(
            ServerSentEvent(
                event=kind, data=data, id=_cursor_text((bar_cursor, refusal_cursor, event_cursor))
            )
        )

    for r in ledger.strategy_refusals(strategy, after_id=refusal_cursor):
        refusal_cursor = r.id
        emit("refusal", _refusal(r))
    for bar in ledger.bars_recorded_after(bar_cursor):
        bar_cursor = bar
        parsed = parse_bar(bar)
        fills = [_fill(r) for r in ledger.strategy_fills(strategy, bar=parsed)]
        for f in fills:
            emit("fill", f)
        for cut in ledger.strategy_cuts(strategy, parsed):
            emit("refusal", _refusal(cut))
        emit("bar", {"bar": bar, "status": "settled", "fills": len(fills)})
    for e in ledger.strategy_events(strategy, after_id=event_cursor):
        event_cursor = e.id
        if e.kind in _STATE_KIND:
            emit("state", {"change": _STATE_KIND[e.kind], "date": e.date, "detail": e.detail})
    return (bar_cursor, refusal_cursor, event_cursor), events
