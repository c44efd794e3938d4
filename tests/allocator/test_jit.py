"""numba's BLAS probe is kept from importing scipy.linalg, and that is its only effect
(allocator/_jit.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_REPLAY = """
import sys
import numpy as np
{before}
from allocator.config import AllocatorConfig
from allocator.data import ReturnsPanel
from allocator.replay import replay
rng = np.random.default_rng(3)
sessions = np.arange(np.datetime64("2020-01-01"), np.datetime64("2021-06-01"))[:300]
panel = ReturnsPanel(sessions=sessions, strategies=("a", "b", "c"),
                     values=rng.normal(0, 0.01, (300, 3)), first=np.zeros(3, dtype=np.intp))
result = replay(panel, AllocatorConfig())
import numba.np.arraymath as am
print("linalg" if "scipy.linalg" in sys.modules else "no-linalg", am._HAVE_BLAS)
{after}
"""

_DOT_AFTER = """
import numba, scipy.linalg
dot = numba.njit(lambda a: np.dot(a, a))
print("dot", dot(np.arange(3.0)))
"""


def _run(before: str = "", after: str = "") -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _REPLAY.format(before=before, after=after)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.strip().splitlines()


def test_a_replay_never_imports_scipy_linalg_and_blas_still_works_after() -> None:
    lines = _run(after=_DOT_AFTER)
    assert lines[0] == "no-linalg False"
    assert lines[1] == "dot 5.0"  # np.dot imports scipy itself when a kernel uses it


def test_nothing_is_refused_when_scipy_linalg_is_already_there() -> None:
    assert _run(before="import scipy.linalg")[0] == "linalg True"
