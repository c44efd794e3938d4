"""A Dagster run worker that is started before its run (``python -m pipelines.run_worker``).

Dagster starts every run in a fresh process that imports Dagster and then the code location,
about 1.7 s on a 2-core machine before the run's first step. :class:`~pipelines.run_launcher.
WarmRunLauncher` keeps one of these workers waiting instead, with that work already done, and
hands it the next bar run. The run itself is executed by Dagster's own run-worker code, the body
of ``dagster api execute_run``: the only thing this module changes is *when* the imports happen.

Protocol on standard input, one line each:

1. JSON ``{"origin": <serialized RepositoryPythonOrigin>, "instance_ref": <serialized
   InstanceRef>, "preload": [module, ...]}``: the code location to load in advance, the
   instance to open once in advance (the first instance a process opens costs ~0.35 s of
   imports and storage set-up), and modules the run would otherwise import on first use
   (the launcher's ``preload_modules``; best effort: one that fails to import is reported and
   skipped, and the run imports it as usual);
2. the serialized ``ExecuteRunArgs`` of the run to execute.

End of input instead of line 2 (the launcher discarded the spare or its process ended) makes the
worker exit without doing anything. A worker whose code is out of date when its run arrives
(a module of the code location changed on disk after it was imported, e.g. while ``dagster dev``
reloads) or whose advance load failed does not run stale or broken code: it replaces itself
(``exec``, same pid) with the stock ``dagster api execute_run``, which loads the code afresh and
reports any load error in the run's own event log.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Iterable
from pathlib import Path

EXECUTE_RUN_ARGS_ENV = "DAGSTER_EXECUTE_RUN_ARGS"  # the env var ``dagster api execute_run`` reads
# Modules Dagster 1.13 imports on first use while it executes any run (seen in a bar run's
# import trace); preloaded best effort, so a rename in a later Dagster costs only the warm-up.
DAGSTER_RUN_MODULES = (
    "dagster._core.system_config.composite_descent",
    "dagster._core.executor.in_process",
    "dagster._core.execution.plan.active",
    "watchdog.observers.polling",
)


def stale_modules(modules: Iterable[object], root: Path, loaded_at: float) -> list[str]:
    """Names of the ``modules`` whose source file lies under ``root`` and changed on disk after
    ``loaded_at`` (a ``time.time()`` taken before they were imported)."""
    root = root.resolve()
    stale = []
    for module in modules:
        path = getattr(module, "__file__", None)
        if not path:
            continue
        try:
            file = Path(path).resolve()
            if not file.is_relative_to(root) or ".venv" in file.parts:
                continue
            if file.stat().st_mtime > loaded_at:
                stale.append(str(getattr(module, "__name__", file)))
        except OSError:  # deleted or unreadable since the import: out of date too
            stale.append(str(getattr(module, "__name__", path)))
    return stale


def _cold_start(execute_run_args: str) -> None:
    """Become ``dagster api execute_run`` (same pid, fresh interpreter, code loaded anew)."""
    env = dict(os.environ)
    env[EXECUTE_RUN_ARGS_ENV] = execute_run_args
    argv = [sys.executable, "-m", "dagster", "api", "execute_run"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def main() -> None:
    sys.stdin.reconfigure(encoding="utf-8")  # type: ignore[union-attr]  # the launcher writes UTF-8
    first = sys.stdin.readline()
    if not first.strip():
        return
    root = Path.cwd()
    loaded_at = time.time()
    preload_error = None
    try:
        from dagster._cli.api import execute_run_command  # the body Dagster's own worker runs
        from dagster._core.instance import DagsterInstance
        from dagster._core.instance.ref import InstanceRef
        from dagster._core.origin import RepositoryPythonOrigin
        from dagster._serdes import deserialize_value
        from dagster._utils.hosted_user_process import recon_repository_from_origin

        spec = json.loads(first)
        origin = deserialize_value(spec["origin"], RepositoryPythonOrigin)
        if origin.code_pointer.working_directory:
            root = Path(origin.code_pointer.working_directory)
        recon_repository_from_origin(origin).get_definition()
        for name in (*DAGSTER_RUN_MODULES, *spec.get("preload", ())):
            try:
                importlib.import_module(name)
            except Exception as exc:  # a warm-up only: the run imports it again if it needs it
                print(f"pipelines.run_worker: preload of {name} failed: {exc!r}", file=sys.stderr)
        if spec.get("instance_ref"):
            ref = deserialize_value(spec["instance_ref"], InstanceRef)
            with DagsterInstance.from_ref(ref) as instance:
                instance.get_run_records(limit=1)  # storages opened once; closed again
    except Exception:  # reported here, then by the stock worker in the run's own events
        preload_error = traceback.format_exc()
        print(f"pipelines.run_worker: advance load failed:\n{preload_error}", file=sys.stderr)

    line = sys.stdin.readline().strip()
    if not line:
        return  # no run for this spare
    if preload_error is not None:
        _cold_start(line)
    stale = stale_modules(list(sys.modules.values()), root, loaded_at)
    if stale:
        print(
            f"pipelines.run_worker: code changed since load ({stale[:5]}): cold start",
            file=sys.stderr,
        )
        _cold_start(line)
    execute_run_command.callback(line, None)  # type: ignore[misc]


if __name__ == "__main__":
    main()
