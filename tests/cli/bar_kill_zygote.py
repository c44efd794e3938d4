"""Run ``allocator bar run`` in fresh child processes forked from one warm parent, each of which
may SIGKILL itself at a checkpoint or at an instant after the seal.

Why: a new interpreter pays ~3-5 s of imports (pandas, alpaca-py, ccxt, ib_async) before the
bar starts; the venue kill tests run ~100 bars. The parent imports everything once and stays
single-threaded; each request forks a child that is a process of its own (its own sockets,
ledger connections and venue sessions, no cleanup when killed), like the one
``bar_kill_script.py`` starts, and the parent reports how it ended.

Protocol: one JSON object per line on stdin, ``{"args": [...], "env": {...}, "crash_at": "",
"stdout": PATH, "stderr": PATH}``; one line per request on stdout, ``{"rc": N}``, N the
child's exit code or ``-SIGNAL``. ``crash_at`` is that of ``bar_kill_script.py`` (``""``,
``#N``, a checkpoint prefix) or ``@SECONDS``: SIGKILL that long after the first checkpoint
(the seal), from a timer thread of the child, whatever it is doing then.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import traceback
from typing import Any

import cli.bar
from cli.main import build_parser, main
from tests.cli.bar_kill_script import _hook

WARM = (
    "allocator.execution.bar",
    "allocator.execution.reconcile",
    "resources.brokers.alpaca.client",
    "resources.brokers.ccxt.client",
    "resources.brokers.ibkr.client",
    "resources.brokers.registry",
    "resources.ledger",
)


def _warm() -> None:
    """Import what a bar run imports on first use, so that no child pays for it."""
    for module in WARM:
        importlib.import_module(module)
    build_parser()  # imports every sub-command's module


def _kill_after_seal(delay_s: float) -> None:
    armed = [False]

    def checkpoint(_: str) -> None:
        if not armed[0]:
            armed[0] = True
            timer = threading.Timer(delay_s, os.kill, args=(os.getpid(), signal.SIGKILL))
            timer.daemon = True
            timer.start()

    cli.bar.checkpoint_hook = checkpoint


def _child(request: dict[str, Any]) -> None:
    code = 1
    try:
        for fd, key in ((1, "stdout"), (2, "stderr")):
            target = os.open(request[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.environ.clear()
        os.environ.update(request["env"])
        crash_at = request.get("crash_at", "")
        if crash_at.startswith("@"):
            _kill_after_seal(float(crash_at[1:]))
        else:
            _hook(crash_at)
        code = main(request["args"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    _warm()
    if threading.active_count() != 1:
        raise RuntimeError(f"the parent must be single-threaded to fork: {threading.enumerate()}")
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
