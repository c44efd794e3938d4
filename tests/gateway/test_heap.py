"""The gateway's heap freeze (gateway/heap.py), in a process of its own: freezing the test
process's heap would keep every object alive now for the rest of the session."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
import weakref
from gateway.heap import freeze_long_lived

class Cycle:
    pass

garbage = Cycle(); garbage.me = garbage; gone = weakref.ref(garbage); del garbage
kept = Cycle(); kept.me = kept; frozen_one = weakref.ref(kept)
assert gc.get_freeze_count() == 0
frozen = freeze_long_lived()
assert gone() is None, "garbage was frozen instead of collected"
assert frozen == gc.get_freeze_count() > 1000, frozen
assert not any(type(o) is Cycle for o in gc.get_objects()), "a frozen object is still scanned"
del kept
gc.collect()
assert frozen_one() is not None, "the documented cost: a frozen cycle is never reclaimed"
after = Cycle(); after.me = after; later = weakref.ref(after); del after
gc.collect()
assert later() is None, "what is made after the freeze is still collected"
print(frozen)
"""


def test_freezing_keeps_the_live_heap_out_of_collections_and_collects_what_comes_after() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 1000
