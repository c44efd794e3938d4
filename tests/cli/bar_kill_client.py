"""The parent's side of ``bar_kill_zygote.py``: start it, ask it to run ``allocator ARGS`` in a
new forked child (which may kill itself at a checkpoint), and read how the child ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Zygote:
    """``bar_kill_zygote.py``: runs ``allocator bar run`` in child processes forked from one
    warm parent (a fresh interpreter would pay seconds of imports for each of ~100 bars)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cli.bar_kill_zygote"],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert "ready" in self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the zygote died (exit {self.proc.poll()})"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run_args(
        self, args: list[str], env: dict[str, str], crash_at: str, out: Path, err: Path
    ) -> Ended:
        """One ``allocator ARGS`` in a new child with ``env``; its output in ``out``/``err``."""
        assert self.proc.stdin is not None
        request = {
            "args": args,
            "env": env,
            "crash_at": crash_at,
            "stdout": str(out),
            "stderr": str(err),
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        rc = int(self._answer()["rc"])
        return Ended(rc, out.read_text(encoding="utf-8"), err.read_text(encoding="utf-8"))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass(frozen=True)
class Ended:
    """How one child ended: its exit code (``-SIGNAL`` when killed) and its output."""

    returncode: int
    stdout: str
    stderr: str
