"""Expectations on a DataFrame, evaluated by Great Expectations 1.x (or a native twin).

A check names its expectations as small tuples; :func:`expect` turns them into a
``dg.AssetCheckResult`` whose metadata lists the failing expectations and the failing rows.
GX is imported inside the call (a top-level import costs every process ~4 s) and its ephemeral
context is built once per process. The ``native`` engine evaluates the same expectation kinds
with pandas; the per-bar path uses it by default because the GX import alone would exceed the
bar's latency budget (tests prove both engines agree).

Kinds: ``("between", col, lo, hi)``, ``("in_set", col, values)``, ``("not_null", col)``,
``("unique", col)``, ``("compound_unique", (col, ...))``, ``("true", col)`` (a derived
boolean column must be true on every row).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

__all__ = ["Expectation", "combine", "expect", "markdown_table"]

Expectation = tuple[Any, ...]
_MAX_ROWS = 20


def _import_gx() -> Any:
    # GX 1.x imports the stdlib's deprecated ``sre_constants``/``sre_parse`` (DeprecationWarning
    # on 3.11): third-party noise, silenced for this import only.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="module 'sre_(constants|parse)' is deprecated")
        import great_expectations as gx
    return gx


@functools.lru_cache(maxsize=1)
def _gx_batch_definition() -> Any:
    gx = _import_gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}  # type: ignore[assignment]
    source = context.data_sources.add_pandas("allocator")
    asset = source.add_dataframe_asset(name="frame")
    return asset.add_batch_definition_whole_dataframe("whole")


def _gx_expectation(spec: Expectation) -> Any:
    import great_expectations.expectations as gxe

    kind = spec[0]
    if kind == "between":
        return gxe.ExpectColumnValuesToBeBetween(
            column=spec[1], min_value=spec[2], max_value=spec[3]
        )
    if kind == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(column=spec[1], value_set=list(spec[2]))
    if kind == "true":
        return gxe.ExpectColumnValuesToBeInSet(column=spec[1], value_set=[True])
    if kind == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=spec[1])
    if kind == "unique":
        return gxe.ExpectColumnValuesToBeUnique(column=spec[1])
    if kind == "compound_unique":
        return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(spec[1]))
    raise ValueError(f"unknown expectation kind {kind!r}")


def _run_gx(frame: pd.DataFrame, specs: Sequence[Expectation]) -> list[tuple[str, list[int]]]:
    gx = _import_gx()
    batch = _gx_batch_definition().get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(name="check", expectations=[_gx_expectation(s) for s in specs])
    result = batch.validate(suite, result_format="COMPLETE")
    failed: list[tuple[str, list[int]]] = []
    for spec, res in zip(specs, result.results, strict=True):
        if not res.success:
            rows = [int(i) for i in (res.result.get("unexpected_index_list") or [])]
            failed.append((_name(spec), rows))
    return failed


def _run_native(frame: pd.DataFrame, specs: Sequence[Expectation]) -> list[tuple[str, list[int]]]:
    failed: list[tuple[str, list[int]]] = []
    for spec in specs:
        kind = spec[0]
        if kind == "compound_unique":
            bad = frame.duplicated(subset=list(spec[1]), keep=False).to_numpy()
        else:
            col = frame[spec[1]]
            present = col.notna().to_numpy()
            if kind == "between":
                values = col.astype(float).to_numpy()
                lo = -np.inf if spec[2] is None else spec[2]
                hi = np.inf if spec[3] is None else spec[3]
                with np.errstate(invalid="ignore"):
                    bad = present & ~((values >= lo) & (values <= hi))
            elif kind in ("in_set", "true"):
                allowed = [True] if kind == "true" else list(spec[2])
                bad = present & ~col.isin(allowed).to_numpy()
            elif kind == "not_null":
                bad = ~present
            elif kind == "unique":
                bad = present & col.duplicated(keep=False).to_numpy()
            else:
                raise ValueError(f"unknown expectation kind {kind!r}")
        rows = np.flatnonzero(bad).tolist()
        if rows:
            failed.append((_name(spec), rows))
    return failed


def _name(spec: Expectation) -> str:
    return f"{spec[0]}({', '.join(str(x) for x in spec[1:])})"


def expect(
    frame: pd.DataFrame,
    specs: Sequence[Expectation],
    *,
    engine: str = "gx",
    description: str = "",
    extra: dict[str, Any] | None = None,
) -> dg.AssetCheckResult:
    """Evaluate ``specs`` on ``frame``; failing rows go to the result's metadata."""
    frame = frame.reset_index(drop=True)
    if len(frame) == 0:
        failed: list[tuple[str, list[int]]] = []
    elif engine == "gx":
        failed = _run_gx(frame, specs)
    elif engine == "native":
        failed = _run_native(frame, specs)
    else:
        raise ValueError(f"unknown check engine {engine!r} (gx or native)")
    bad_rows = sorted({r for _, rows in failed for r in rows})
    metadata: dict[str, Any] = {
        "engine": engine,
        "rows": len(frame),
        "expectations": len(specs),
        "failing_rows_count": len(bad_rows),
    }
    if description:
        metadata["checked"] = description
    if failed:
        metadata["failed_expectations"] = dg.MetadataValue.md(
            "\n".join(f"- `{name}`: {len(rows)} row(s)" for name, rows in failed)
        )
        shown = frame.iloc[bad_rows[:_MAX_ROWS]]
        metadata["failing_rows"] = dg.MetadataValue.md(_markdown(shown))
    if extra:
        metadata.update(extra)
    return dg.AssetCheckResult(passed=not failed, metadata=metadata)


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


markdown_table = _markdown


def combine(*results: dg.AssetCheckResult) -> dg.AssetCheckResult:
    """One result from several validations of the same asset (passes when all pass)."""
    metadata: dict[str, Any] = {}
    for i, r in enumerate(results):
        for key, value in (r.metadata or {}).items():
            metadata[key if i == 0 or key not in metadata else f"{key}_{i + 1}"] = value
    return dg.AssetCheckResult(passed=all(r.passed for r in results), metadata=metadata)
