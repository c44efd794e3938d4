"""The demo's last bars through the strategy gateway: one reference strategy as a real client.

:class:`GatewayDoor` serves the gateway (:func:`gateway.server.running_gateway`: uvicorn on
127.0.0.1, a free port, a thread of the demo's process) on the demo's ledger, issues the
strategy's token with ``allocator strategy add NAME`` (a command of its own, whose last line is
the token), and starts the strategy's bot, ``python -m demo.bot`` (:mod:`demo.bot`), as a
separate process with that token. For each of the door's bars the demo asks the bot for its
intents (:meth:`GatewayDoor.submit`); the bot reads its budget and positions over HTTP and posts
its intents to ``POST /v1/intents``; the demo then checks the ledger holds exactly the intents
its backfill would have written for that strategy (the same intents, through the door: the
demo's figures do not change) and submits the other strategies' as before. At the end
(:meth:`GatewayDoor.finish`) the bot reads its fills back from ``GET /v1/fills``.

The gateway judges a bar's age (``stale_bar``) against the replay's clock: the end of the bar
being replayed, not the wall clock of 2026 (the demo's bars are 2006-2010).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from allocator.execution.records import Bar
from allocator.settings import load_settings

__all__ = ["DoorReport", "GatewayDoor"]

PROJECT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0


@dataclass(frozen=True, kw_only=True, slots=True)
class DoorReport:
    """What went through the gateway: the strategy, its bars (first and last), the bot's
    process id, the intent ids the gateway accepted and the fills the bot read back."""

    strategy: str
    first_bar: str
    last_bar: str
    bot_pid: int
    intents: tuple[str, ...]
    fills: tuple[tuple[str, str], ...]  # (bar, symbol)


class GatewayDoor:
    """The gateway and one strategy's bot for the demo's last bars (see the module doc).

    Start it early (:meth:`start`: the token and the bot's start-up run in the background while
    the backfill goes on); :meth:`close` stops the bot and the gateway.
    """

    def __init__(
        self, *, strategy: str, ledger_url: str, instruments: Path, config_path: str = ""
    ) -> None:
        self.strategy = strategy
        self._ledger_url = ledger_url
        self._settings = load_settings(
            config=config_path or None, env={}, ledger_url=ledger_url, instruments=instruments
        )
        self._stack = ExitStack()
        self._now = datetime.now(UTC)
        self._url = ""
        self._bot: subprocess.Popen[str] | None = None
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._pid = 0
        self._bars: list[str] = []
        self._accepted: list[str] = []

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve the gateway; issue the token and start the bot in the background."""
        from gateway.server import running_gateway

        self._url = self._stack.enter_context(
            running_gateway(self._settings, launcher=None, clock=lambda: self._now)
        )
        self._starting = threading.Thread(target=self._start_bot, name="demo-bot", daemon=True)
        self._starting.start()

    def _start_bot(self) -> None:
        try:
            token = _strategy_add(self.strategy, self._ledger_url)
            env = dict(os.environ, **{"ALLOCATOR_GATEWAY_TOKEN": token})
            self._bot = subprocess.Popen(
                [sys.executable, "-m", "demo.bot", "--url", self._url, "--strategy", self.strategy],
                cwd=PROJECT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            ready = self._read()
            if not ready.get("ready"):
                raise RuntimeError(f"the bot did not start: {ready}")
            self._pid = int(ready["pid"])
        except BaseException as exc:  # reported by the first submit
            self._start_error = exc

    def close(self) -> None:
        bot, self._bot = self._bot, None
        if bot is not None:
            try:
                if bot.poll() is None and bot.stdin is not None:
                    bot.stdin.write(json.dumps({"stop": True}) + "\n")
                    bot.stdin.close()
                bot.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                bot.kill()
                bot.wait()
            finally:
                for pipe in (bot.stdin, bot.stdout):
                    if pipe is not None:
                        pipe.close()
        self._stack.close()

    # -- the bars -----------------------------------------------------------------------------

    def post(self, bar: Bar) -> list[str]:
        """Ask the bot for ``bar``'s intents (posted through the gateway on the replay's clock:
        the bar's end); return the ids the gateway accepted."""
        if self._starting is not None:
            self._starting.join(START_TIMEOUT_S)
            self._starting = None
            if self._start_error is not None:
                raise RuntimeError(f"the demo's bot: {self._start_error}") from self._start_error
        self._now = bar.end()
        answer = self._ask({"bar": bar.key})
        if answer.get("refused"):
            raise RuntimeError(f"bar {bar}: the gateway refused the bot's intents: {answer}")
        self._bars.append(bar.key)
        accepted = [str(i) for i in answer["accepted"]]
        self._accepted += accepted
        return accepted

    def finish(self, before_first: str) -> DoorReport:
        """The bot reads its fills of the door's bars (``GET /v1/fills?since=before_first``)."""
        if not self._bars:
            raise RuntimeError("no bar went through the gateway")
        answer = self._ask({"fills_since": before_first})
        fills = tuple((str(f["bar"]), str(f["symbol"])) for f in answer["fills"])
        return DoorReport(
            strategy=self.strategy,
            first_bar=self._bars[0],
            last_bar=self._bars[-1],
            bot_pid=self._pid,
            intents=tuple(self._accepted),
            fills=fills,
        )

    # -- the bot's pipe -----------------------------------------------------------------------

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        bot = self._bot
        if bot is None or bot.stdin is None:
            raise RuntimeError("the demo's bot is not running")
        bot.stdin.write(json.dumps(command) + "\n")
        bot.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        bot = self._bot
        assert bot is not None
        assert bot.stdout is not None
        line = bot.stdout.readline()
        if not line:
            code = bot.wait(timeout=30)
            raise RuntimeError(f"the demo's bot ended (exit {code}) without answering")
        answer: dict[str, Any] = json.loads(line)
        return answer


def _strategy_add(name: str, ledger_url: str) -> str:
    """``allocator strategy add NAME``: the token is the last line of its output."""
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "strategy", "add", name, "--ledger", ledger_url],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        timeout=START_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"allocator strategy add {name}: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1]
