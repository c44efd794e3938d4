"""Typed failures of the allocator core.

Every error carries the context a person needs to fix the cause: the configuration key, or the
file, row and problem of a bad input. Nothing here is ever swallowed by the core.
"""

from __future__ import annotations

__all__ = ["AllocatorError", "ConfigError", "InputError", "SolverError"]


class AllocatorError(Exception):
    """Base class of every error the allocator raises on purpose."""


class ConfigError(AllocatorError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range.

    ``key`` is the dotted key (``correlation.threshold``); the message starts with it.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class InputError(AllocatorError, ValueError):
    """A row of an input file cannot be used.

    ``source`` names the file, ``row`` the 1-based data row (the header is row 0; ``None`` for
    a whole-file problem such as a missing column) and ``problem`` what is wrong with it.
    """

    def __init__(self, source: str, row: int | None, problem: str) -> None:
        self.source = source
        self.row = row
        self.problem = problem
        where = f"{source}: row {row}" if row is not None else source
        super().__init__(f"{where}: {problem}")


class SolverError(AllocatorError, RuntimeError):
    """A numerical solver did not reach its stated tolerance; no fallback is taken."""
