"""A typed face for numba's ``njit`` so that mypy strict keeps the kernels' signatures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def njit(fn: F) -> F:
    """Compile ``fn`` in nopython mode, cached on disk next to the module."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(fn))
