"""Keep the gateway's start-up heap out of the garbage collector's full collections.

Why: after start-up the gateway process holds ~300,000 tracked objects that live as long as it
does (the modules of FastAPI, pydantic, SQLAlchemy and the allocator; with the bar launcher,
Dagster and the code location too). CPython's full (generation 2) collection walks every one
of them, and under the ingest benchmark's load it ran every few seconds and took 150-200 ms
with the GIL held: every request in flight waited, which was the whole of
``gateway_ingest_p99_ms`` (p50 15 ms, p99 145-195 ms). :func:`gc.freeze` moves the objects
alive at that moment to the permanent generation, which collections skip; what requests
allocate afterwards is still collected as usual. The cost is that a reference cycle among the
frozen objects is never reclaimed, so the heap is frozen only at the two points where it holds
nothing but long-lived state: when the app has started, and when the bar launcher has loaded
the code location.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> int:
    """Collect the garbage now, then freeze every object still alive; returns how many objects
    are frozen in all (:func:`gc.get_freeze_count`)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
