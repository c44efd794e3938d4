"""Run ``allocator bar run`` in this process and SIGKILL it at a checkpoint.

Usage: python bar_kill_script.py CRASH_AT ARGS... where ARGS are ``allocator`` arguments.
``CRASH_AT`` is ``""`` (no kill), a checkpoint name prefix (``fill:``) or ``#N`` (the N-th
checkpoint of the run, 1-based). The kill is a real SIGKILL of the process: no cleanup, no
flush, no rollback beyond what the database itself does.
"""

from __future__ import annotations

import os
import signal
import sys

import cli.bar
from cli.main import main


def _hook(crash_at: str) -> None:
    seen = [0]

    def checkpoint(name: str) -> None:
        seen[0] += 1
        if os.environ.get("BAR_KILL_TRACE"):
            print(f"checkpoint {seen[0]} {name}", file=sys.stderr, flush=True)
        if not crash_at:
            return
        if crash_at.startswith("#"):
            hit = seen[0] == int(crash_at[1:])
        else:
            hit = name.startswith(crash_at)
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)

    cli.bar.checkpoint_hook = checkpoint


if __name__ == "__main__":
    _hook(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
