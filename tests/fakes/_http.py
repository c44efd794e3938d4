"""A small threaded HTTP server on 127.0.0.1 with fault injection, shared by the REST tests.fakes.

A venue fake subclasses :class:`FakeRestVenue` and implements ``route`` (one request in, one
``(status, json body)`` out) and ``is_submit`` (which requests place orders). Faults are queued
with :meth:`FakeRestVenue.inject` and consumed, first in first out, by the next matching
request:

- ``status`` (``when="before"``): answer ``status`` without processing (e.g. 429);
- ``status`` (``when="after"``): process the request (the order is accepted), then answer
  ``status`` instead of the real reply (a 5xx after acceptance);
- ``hold``: process, then hold the answer for ``hold_s`` seconds (a timeout after acceptance);
- ``disconnect``: process, then close the socket without answering;
- ``reject``, ``partial``, ``rest``: venue-specific order outcomes, read by ``route`` through
  :meth:`FakeRestVenue.take_order_fault`.

``submits`` keeps every order-placing request as received (the wire text of its quantity);
``delay_s`` answers every request that much later, concurrently (a venue far away).

:meth:`FakeRestVenue.restart` stops the server and starts it again on the same port with its
state kept: the venue "restarts with open orders".
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeRestVenue", "Fault", "Request"]

FaultKind = Literal["status", "hold", "disconnect", "reject", "partial", "rest"]
ORDER_FAULTS = ("reject", "partial", "rest")


@dataclass(frozen=True, kw_only=True)
class Fault:
    kind: FaultKind
    on: Literal["submit", "any"] = "submit"
    status: int = 500
    when: Literal["before", "after"] = "after"
    hold_s: float = 3.0
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    json: Any
    headers: Mapping[str, str]
    raw_query: str
    raw_body: str


class FakeRestVenue:
    """Base of the REST fakes: lifecycle, request log, fault queue."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self._order_fault: Fault | None = None
        self.log: list[tuple[str, str]] = []
        self.submits: list[Request] = []  # every order-placing request, as received
        self.delay_s = 0.0  # every request is answered this much later (a distant venue)
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeRestVenue:
        venue = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The headers and the body are two writes: with Nagle on, the body waits for the
            # client's delayed ACK (~40 ms on Linux) on every request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                venue._serve(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle  # noqa: N815

        self._release.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def restart(self) -> None:
        """Stop and start again on the same port; orders and positions are kept."""
        self.stop()
        self.start()

    # -- faults ----------------------------------------------------------------------------
    def inject(self, kind: FaultKind, **options: Any) -> None:
        with self.lock:
            self.faults.append(Fault(kind=kind, **options))

    def _take_fault(self, is_submit: bool) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.on == "any" or (fault.on == "submit" and is_submit):
                    return self.faults.pop(i)
        return None

    def take_order_fault(self) -> Fault | None:
        """The order-outcome fault (reject/partial/rest) of the request being served."""
        fault, self._order_fault = self._order_fault, None
        return fault

    # -- to implement ----------------------------------------------------------------------
    def is_submit(self, request: Request) -> bool:
        raise NotImplementedError

    def route(self, request: Request) -> tuple[int, Any]:
        raise NotImplementedError

    # -- serving ---------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length).decode() if length else ""
        content_type = handler.headers.get("Content-Type") or ""
        body_json: Any = None
        form: dict[str, str] = {}
        if raw_body and "json" in content_type:
            body_json = json.loads(raw_body)
        elif raw_body:
            form = dict(parse_qsl(raw_body, keep_blank_values=True))
        request = Request(
            method=handler.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            form=form,
            json=body_json,
            headers={k.lower(): v for k, v in handler.headers.items()},
            raw_query=split.query,
            raw_body=raw_body,
        )
        submit = self.is_submit(request)
        if self.delay_s > 0:
            self._release.wait(self.delay_s)
        with self.lock:
            self.log.append((request.method, request.path))
            if submit:
                self.submits.append(request)
            fault = self._take_fault(submit)
            if fault is not None and fault.kind == "status" and fault.when == "before":
                self._write(handler, fault.status, dict(fault.body) or {"error": "injected"})
                return
            if fault is not None and fault.kind in ORDER_FAULTS:
                self._order_fault = fault
            status, body = self.route(request)
            self._order_fault = None
        if fault is None or fault.kind in ORDER_FAULTS:
            self._write(handler, status, body)
        elif fault.kind == "status":
            self._write(handler, fault.status, dict(fault.body) or {"error": "injected"})
        elif fault.kind == "hold":
            if not self._release.wait(fault.hold_s):
                self._write(handler, status, body)
        elif fault.kind == "disconnect":
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (a held answer after its timeout)
            handler.close_connection = True
