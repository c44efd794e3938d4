"""A typed face for numba's ``njit`` so that mypy strict keeps the kernels' signatures.

Used by the streaming kernels of :mod:`allocator.stats` (the statistics of SPEC §2 and the pair
counters of §3). ``numba.njit`` is untyped, so a decorated kernel would become ``Any`` and mypy
strict would stop checking every call into it; the cast keeps the function's own signature.

Why the per-bar path never imports this module: importing numba and dispatching to a compiled
kernel cost a new Dagster run worker about 0.6 s (``allocator/execution/gating.py``), a large
part of a bar's latency budget. An import-linter contract in ``pyproject.toml`` forbids
:mod:`allocator.execution` to import it; the gating kernel imports numba lazily, only for bars
of at least ``SMALL_BAR_INTENTS`` (2,048) intents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def njit(fn: F) -> F:
    """Compile ``fn`` in nopython mode, cached on disk next to the module.

    Compilation happens on the first call, for the argument types of that call; ``cache=True``
    stores the machine code in ``__pycache__`` so that a new process loads it instead of
    compiling again. ``nogil=True`` releases the GIL inside the kernel, and
    ``error_model="numpy"`` makes a division by zero give ``inf``/``nan`` as numpy does instead
    of raising.

    Parameters
    ----------
    fn : callable
        A function written in numba's nopython subset.

    Returns
    -------
    callable
        The compiled dispatcher, typed as ``fn``.
    """
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(fn))
