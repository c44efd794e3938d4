"""The sweep's grid: a list of values per configuration key, and its cartesian product.

A grid file is TOML. Keys are the configuration's own (SPEC §11), either as tables
(``[correlation] threshold = [0.6, 0.7]``) or dotted at the top (``"correlation.threshold" =
[0.6, 0.7]``); every value is a non-empty list. Each value is checked by the configuration's
own validation (:meth:`allocator.config.AllocatorConfig.from_mapping`), so an unknown key, a
value of the wrong type or out of range is refused with the dotted key named, exactly as in a
config file. A value that is only wrong together with another grid value of its section (a
``breaker.halt_at`` above a ``breaker.half_at`` of the grid) is not refused: the cells where
it is wrong are skipped and counted (:attr:`Grid.skipped`).
"""

from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from allocator.config import AllocatorConfig
from allocator.errors import ConfigError

__all__ = ["Cell", "Grid", "load_grid", "parse_grid"]

Cell = tuple[tuple[str, Any], ...]  # ((dotted key, value), ...) in the grid's key order


def _section_fields() -> dict[str, set[str]]:
    base = AllocatorConfig()
    return {f.name: {g.name for g in fields(getattr(base, f.name))} for f in fields(base)}


def _nested(items: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in items.items():
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def _merge(base: Mapping[str, Any], cell: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    merged = {k: dict(v) for k, v in base.items()}
    for section, values in _nested(cell).items():
        merged.setdefault(section, {}).update(values)
    return merged


@dataclass(frozen=True, slots=True)
class Grid:
    """A checked grid and the configurations of its product.

    Attributes
    ----------
    keys : tuple of str
        The dotted keys, in the file's order (the sweep table's first columns).
    values : tuple of tuple
        The values of each key, in the file's order.
    base : dict
        The base configuration as a mapping (``--config``'s TOML; empty for SPEC's defaults):
        every cell is the base with the cell's keys replaced.
    cells : tuple of Cell
        The valid configurations of the product, in product order (the last key fastest).
    skipped : tuple of (Cell, str)
        The combinations the configuration refuses (a relation between two grid values),
        with the reason.
    """

    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]
    base: dict[str, dict[str, Any]]
    cells: tuple[Cell, ...]
    skipped: tuple[tuple[Cell, str], ...]

    def config(self, cell: Cell) -> AllocatorConfig:
        """Return the configuration of ``cell``: the base with the cell's values."""
        return AllocatorConfig.from_mapping(_merge(self.base, dict(cell)))

    def to_json(self) -> str:
        """Return the grid and its base as canonical JSON (what a resumed sweep must match)."""
        return json.dumps(
            {"keys": self.keys, "values": self.values, "base": self.base},
            sort_keys=True,
            default=str,
        )


def parse_grid(raw: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> Grid:
    """Check a grid mapping and build its product.

    Parameters
    ----------
    raw : mapping
        ``{section: {key: [values]}}`` and/or ``{"section.key": [values]}`` (parsed TOML).
    base : mapping, optional
        The base configuration as a ``{section: {key: value}}`` mapping.

    Returns
    -------
    Grid

    Raises
    ------
    ConfigError
        An unknown section or key, a key given twice, a value that is not a non-empty list,
        a value the configuration refuses on its own; the message starts with the dotted key.
    """
    base_map = {k: dict(v) for k, v in (base or {}).items()}
    AllocatorConfig.from_mapping(base_map)  # the base itself must be valid
    known = _section_fields()
    flat: dict[str, Any] = {}
    for top, value in raw.items():
        if "." in top:
            pairs = [(top, value)]
        elif isinstance(value, Mapping):
            pairs = [(f"{top}.{k}", v) for k, v in value.items()]
        else:
            raise ConfigError(top, "must be a table of keys or a dotted section.key")
        for key, values in pairs:
            section, _, name = key.partition(".")
            if section not in known:
                raise ConfigError(key, f"unknown section {section!r} (known: {sorted(known)})")
            if name not in known[section]:
                raise ConfigError(key, f"unknown key (known: {sorted(known[section])})")
            if key in flat:
                raise ConfigError(key, "given twice in the grid")
            if not isinstance(values, list):
                raise ConfigError(key, f"must be a list of values, got {values!r}")
            if not values:
                raise ConfigError(key, "must list at least one value, got an empty list")
            flat[key] = values
    if not flat:
        raise ConfigError("grid", "names no key: give at least one section.key = [values]")
    keys = tuple(flat)
    for key in keys:
        section = key.partition(".")[0]
        siblings = [k for k in keys if k != key and k.partition(".")[0] == section]
        contexts = [
            dict(zip(siblings, combo, strict=True))
            for combo in itertools.product(*(flat[k] for k in siblings))
        ]
        for value in flat[key]:
            first: ConfigError | None = None
            for context in contexts:
                try:
                    AllocatorConfig.from_mapping(_merge(base_map, {**context, key: value}))
                except ConfigError as exc:
                    first = first or exc
                    continue
                first = None
                break
            if first is not None:
                problem = first.problem if first.key == key else str(first)
                raise ConfigError(key, f"value {value!r} refused: {problem}") from None
    cells: list[Cell] = []
    skipped: list[tuple[Cell, str]] = []
    for combo in itertools.product(*(flat[k] for k in keys)):
        cell: Cell = tuple(zip(keys, combo, strict=True))
        try:
            AllocatorConfig.from_mapping(_merge(base_map, dict(cell)))
        except ConfigError as exc:
            skipped.append((cell, str(exc)))
            continue
        cells.append(cell)
    return Grid(
        keys=keys,
        values=tuple(tuple(flat[k]) for k in keys),
        base=base_map,
        cells=tuple(cells),
        skipped=tuple(skipped),
    )


def load_grid(path: str | Path, base: Mapping[str, Any] | None = None) -> Grid:
    """Read and check a grid TOML file; errors name the file and the dotted key."""
    source = Path(path)
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(source), f"cannot read the grid file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(source), f"not valid TOML: {exc}") from exc
    try:
        return parse_grid(raw, base)
    except ConfigError as exc:
        raise ConfigError(exc.key, f"{exc.problem} (in {source})") from None
