"""A typed face for numba's ``njit`` so that mypy strict keeps the kernels' signatures.

Used by the streaming kernels of :mod:`allocator.stats` (the statistics of SPEC §2 and the pair
counters of §3). ``numba.njit`` is untyped, so a decorated kernel would become ``Any`` and mypy
strict would stop checking every call into it; the cast keeps the function's own signature.

Why the per-bar path never imports this module: importing numba and dispatching to a compiled
kernel cost a new Dagster run worker about 0.6 s (``allocator/execution/gating.py``), a large
part of a bar's latency budget. An import-linter contract in ``pyproject.toml`` forbids
:mod:`allocator.execution` to import it; the gating kernel imports numba lazily, only for bars
of at least ``SMALL_BAR_INTENTS`` (2,048) intents.

Why numba's numpy registry is loaded here, with ``scipy.linalg`` refused while it loads:
``numba.np.arraymath``, which numba loads before the first kernel runs, probes for a BLAS by
importing ``scipy.linalg.cython_blas``, and importing ``scipy.linalg`` costs about 0.2 s (it
pulls in ``numpy.f2py``), an eighth of ``allocator replay``'s 1.5 s budget
(``replay_cli_wall_s``). The probe sets one flag, read only by numba's ``np.convolve`` and
``np.correlate``, which then use a plain loop; no kernel here calls them, nor BLAS at all
(``tests/allocator/test_jit.py`` checks both that scipy stays out and that the probe's flag is
the only effect). ``np.dot`` and ``np.linalg`` still import scipy when a kernel uses them. When
scipy is already imported, nothing is refused.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
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


class _RefuseScipyLinalg(importlib.abc.MetaPathFinder):
    """Refuse ``scipy.linalg`` (numba's BLAS probe then finds no BLAS)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        if fullname == "scipy.linalg" or fullname.startswith("scipy.linalg."):
            raise ImportError(f"{fullname} is not loaded for numba's BLAS probe")
        return None


def _load_numpy_registry() -> None:
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    finder = _RefuseScipyLinalg()
    sys.meta_path.insert(0, finder)
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        sys.meta_path.remove(finder)


_load_numpy_registry()
