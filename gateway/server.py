"""The gateway served in a thread: uvicorn on 127.0.0.1 and a free port, for the life of a
``with`` block (the demo's door, the tests and the benchmarks; ``allocator serve`` runs it in
the foreground instead)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import uvicorn

from allocator.settings import Settings
from gateway.app import create_app

__all__ = ["running_gateway"]


@contextmanager
def running_gateway(
    settings: Settings,
    launcher: Any = None,
    *,
    clock: Callable[[], datetime] | None = None,
    start_timeout_s: float = 30.0,
) -> Iterator[str]:
    """``create_app(settings, launcher=launcher, clock=clock)`` served on 127.0.0.1 (a free
    port, no access log); yields its base URL and stops the server on exit."""
    app = create_app(settings, launcher=launcher, clock=clock)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
