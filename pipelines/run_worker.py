"""A Dagster run worker that is started before its run (``python -m pipelines.run_worker``).

Dagster starts every run in a fresh process that imports Dagster and then the code location,
about 1.7 s on a 2-core machine before the run's first step. :class:`~pipelines.run_launcher.
WarmRunLauncher` keeps one of these workers waiting instead, with that work already done, and
hands it the next bar run. The run itself is executed by Dagster's own run-worker code, the body
of ``dagster api execute_run``: the only thing this module changes is *when* the imports happen.

Protocol on standard input, one line each:

1. JSON ``{"origin": <serialized RepositoryPythonOrigin>, "instance_ref": <serialized
   InstanceRef>, "preload": [module, ...], "heartbeat_s": <seconds>}``: the code location to
   load in advance, the
   instance to open once in advance (the first instance a process opens costs ~0.35 s of
   imports and storage set-up), and modules the run would otherwise import on first use
   (the launcher's ``preload_modules``; best effort: one that fails to import is reported and
   skipped, and the run imports it as usual);
2. the serialized ``ExecuteRunArgs`` of the run to execute.

End of input instead of line 2 (the launcher discarded the spare or its process ended) makes the
worker exit without doing anything. A worker whose code is out of date when its run arrives
(a module of the code location changed on disk after it was imported, e.g. while ``dagster dev``
reloads) or whose advance load failed does not run stale or broken code: it replaces itself
(``exec``, same pid and start time) with a fresh interpreter running ``python -m
pipelines.run_worker --run``: the stock ``dagster api execute_run`` body, which loads the code
afresh and reports any load error in the run's own event log, plus the lease below.

``python -m pipelines.run_worker --zygote`` (the launcher's default way of making spares) reads
only line 1 (with ``zygote_fd``, its end of a Unix socket, and ``ready_fd``), loads the code and
opens the instance as above, then forks one spare per request on the socket (:func:`_serve`):
each fork is a spare as above that only has to reopen its instance, so a new spare is ready in
a few milliseconds instead of a new interpreter's ~1.7 s. The zygote refuses to fork (and
exits) when its code changed on disk or when a thread is running in it (forking a process with
other threads can copy a held lock); the launcher then starts a new zygote, and after repeated
failures falls back to spares that are interpreters of their own.

While its run lasts the worker renews its lease every ``heartbeat_s`` seconds (a daemon thread;
:mod:`pipelines.run_lease`), so that any process that opens the instance, on any host, can tell
whether it still runs, and it reads there whether a remote process asked to cancel the run: then
it interrupts itself with SIGINT, exactly as a local "Terminate" would.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

EXECUTE_RUN_ARGS_ENV = "DAGSTER_EXECUTE_RUN_ARGS"  # the env var ``dagster api execute_run`` reads
HEARTBEAT_ENV = "ALLOCATOR_RUN_WORKER_HEARTBEAT_S"  # carried over the exec of a cold start
LEASE_JOIN_S = 5.0  # how long the end of a run waits for a lease renewal under way
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


def _cold_start(execute_run_args: str, heartbeat_s: float) -> None:
    """Become ``python -m pipelines.run_worker --run`` (same pid and start time, a fresh
    interpreter: the code is loaded anew)."""
    env = dict(os.environ)
    env[EXECUTE_RUN_ARGS_ENV] = execute_run_args
    env[HEARTBEAT_ENV] = repr(heartbeat_s)
    argv = [sys.executable, "-m", "pipelines.run_worker", "--run"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def _keep_lease(instance: Any, run_id: str, interval_s: float, stop: threading.Event) -> None:
    """Renew the run's lease now and every ``interval_s`` until ``stop``; interrupt the run
    (SIGINT to this process) once a cancellation was requested through the instance. A failed
    renewal is reported and retried at the next beat: the run itself goes on. Imports nothing
    (:func:`_start_lease` did): an import in this thread would contend with the run's own."""
    from pipelines.run_lease import Lease, WorkerIdentity, read_cancel, write_lease

    me = WorkerIdentity.here()
    interrupted = False
    wait = 0.0  # the first renewal at once: the launcher's lease is as old as the hand-over
    while not stop.wait(wait):
        wait = interval_s
        try:
            write_lease(instance, Lease(run_id=run_id, worker=me, renewed_at=time.time()))
            if not interrupted and read_cancel(instance, run_id):
                interrupted = True
                print(f"pipelines.run_worker: run {run_id} cancelled remotely", file=sys.stderr)
                os.kill(os.getpid(), signal.SIGINT)
        except Exception as exc:  # the lease is a signal of life, never a reason to fail the run
            print(f"pipelines.run_worker: lease renewal failed: {exc!r}", file=sys.stderr)


def _start_lease(instance: Any, execute_run_args: str, interval_s: float) -> Callable[[], None]:
    """Start renewing the lease of the run in ``execute_run_args``; returns the function that
    stops the renewals and waits (briefly) for the last one to end, so that the instance can
    be disposed of after it."""
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import deserialize_value

    import pipelines.run_lease  # noqa: F401  # here, not in the thread (done in advance when warm)

    run_id = deserialize_value(execute_run_args, ExecuteRunArgs).run_id
    stop = threading.Event()
    thread = threading.Thread(
        target=_keep_lease, args=(instance, run_id, interval_s, stop), daemon=True
    )
    thread.start()

    def stop_renewing() -> None:
        stop.set()
        thread.join(timeout=LEASE_JOIN_S)

    return stop_renewing


def _signal_ready(spec: dict[str, Any]) -> None:
    """Tell the launcher this spare is done loading (loaded or not: a failed load goes cold):
    one byte on the pipe it passed as ``ready_fd``, then the pipe is closed."""
    fd = spec.get("ready_fd")
    if not isinstance(fd, int):
        return
    try:
        os.write(fd, b".")
        os.close(fd)
    except OSError:
        pass  # the launcher stopped waiting (or exited): nothing to tell


def _run_fresh() -> None:
    """``--run``: execute the run in ``DAGSTER_EXECUTE_RUN_ARGS`` as ``dagster api
    execute_run`` does, renewing its lease meanwhile."""
    from dagster._cli.api import execute_run_command
    from dagster._core.instance import DagsterInstance
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import deserialize_value

    line = os.environ[EXECUTE_RUN_ARGS_ENV]
    interval = float(os.environ.get(HEARTBEAT_ENV) or 2.0)
    ref = deserialize_value(line, ExecuteRunArgs).instance_ref
    instance = DagsterInstance.from_ref(ref) if ref is not None else None
    stop = _start_lease(instance, line, interval) if instance is not None else None
    try:
        execute_run_command.callback(line, None)  # type: ignore[misc]
    finally:
        if stop is not None:
            stop()


def _load(spec: dict[str, Any]) -> tuple[Path, float, str | None]:
    """Do a spare's advance work: load the code location of ``spec`` and preload modules.

    Returns the code's root (for :func:`stale_modules`), the time taken before the imports and
    the traceback of a failed load (``None`` when it loaded).
    """
    root = Path.cwd()
    loaded_at = time.time()
    try:
        from dagster._cli.api import execute_run_command  # noqa: F401  # the run's body
        from dagster._core.instance import DagsterInstance  # noqa: F401
        from dagster._core.instance.ref import InstanceRef  # noqa: F401
        from dagster._core.origin import RepositoryPythonOrigin
        from dagster._serdes import deserialize_value
        from dagster._utils.hosted_user_process import recon_repository_from_origin

        origin = deserialize_value(spec["origin"], RepositoryPythonOrigin)
        if origin.code_pointer.working_directory:
            root = Path(origin.code_pointer.working_directory)
        recon_repository_from_origin(origin).get_definition()
        import dagster._grpc.types  # noqa: F401  # what the run's lease needs, in advance

        import pipelines.run_lease  # noqa: F401

        for name in (*DAGSTER_RUN_MODULES, *spec.get("preload", ())):
            try:
                importlib.import_module(name)
            except Exception as exc:  # a warm-up only: the run imports it again if it needs it
                print(f"pipelines.run_worker: preload of {name} failed: {exc!r}", file=sys.stderr)
    except Exception:  # reported here, then by the stock worker in the run's own events
        error = traceback.format_exc()
        print(f"pipelines.run_worker: advance load failed:\n{error}", file=sys.stderr)
        return root, loaded_at, error
    return root, loaded_at, None


def _open_instance(spec: dict[str, Any]) -> Any:
    """Open the instance of ``spec`` and its storages (kept open: the lease is renewed on it)."""
    from dagster._core.instance import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import deserialize_value

    if not spec.get("instance_ref"):
        return None
    instance = DagsterInstance.from_ref(deserialize_value(spec["instance_ref"], InstanceRef))
    instance.get_run_records(limit=1)  # storages opened once
    return instance


def _run_spare(spec: dict[str, Any], root: Path, loaded_at: float, error: str | None) -> None:
    """Be a spare whose code is loaded: open the instance, say so, wait for the run, run it."""
    from dagster._cli.api import execute_run_command

    heartbeat_s = float(spec.get("heartbeat_s") or 2.0)
    instance = None
    if error is None:
        try:
            instance = _open_instance(spec)
        except Exception:
            error = traceback.format_exc()
            print(f"pipelines.run_worker: instance failed to open:\n{error}", file=sys.stderr)
    _signal_ready(spec)
    line = sys.stdin.readline().strip()
    if not line:
        return  # no run for this spare
    if error is not None or instance is None:
        _cold_start(line, heartbeat_s)
    stale = stale_modules(list(sys.modules.values()), root, loaded_at)
    if stale:
        print(
            f"pipelines.run_worker: code changed since load ({stale[:5]}): cold start",
            file=sys.stderr,
        )
        _cold_start(line, heartbeat_s)
    stop = _start_lease(instance, line, heartbeat_s)
    try:
        if _same_instance(spec, line):
            _execute_on(instance, line)
        else:  # the run names another instance than the one opened in advance: Dagster's way
            execute_run_command.callback(line, None)  # type: ignore[misc]
    finally:
        stop()
        instance.dispose()


def _same_instance(spec: dict[str, Any], execute_run_args: str) -> bool:
    """Whether the run's instance is the one this spare opened in advance (the launcher keys
    its spares by instance, so it always is; checked rather than assumed)."""
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import deserialize_value, serialize_value

    ref = deserialize_value(execute_run_args, ExecuteRunArgs).instance_ref
    return ref is not None and serialize_value(ref) == spec.get("instance_ref")


def _execute_on(instance: Any, execute_run_args: str) -> None:
    """``dagster api execute_run``'s body (``execute_run_command``), on the instance this spare
    opened in advance instead of a second one opened after the run arrived (~50 ms of a warm
    bar's latency), and without serializing each of the run's events into a buffer that
    command never reads (~30 ms). The rest is Dagster's: the local ``.env`` injected, SIGINT
    deferred to the run's interruptible points, the same exit code on failure."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._cli.utils import _inject_local_env_file
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import deserialize_value
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts():
        args = deserialize_value(execute_run_args, ExecuteRunArgs)
        with _inject_local_env_file(logging.getLogger("dagster")):
            code = _execute_run_command_body(
                args.run_id,
                instance,
                lambda _event: None,
                set_exit_code_on_failure=args.set_exit_code_on_failure or False,
            )
    if code != 0:
        sys.exit(code)


def _reap_children() -> None:
    """Collect the exit status of every finished spare this zygote forked."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def fork_unsafe_threads() -> list[str]:
    """Name the threads that would make a fork unsafe (none in a zygote that only imported).

    A forked child has only the forking thread: any other Python thread, or the worker pool of
    polars (``polars-N``, started by its first parallel operation), would be missing there with
    whatever locks it held. The allocator's native threads that stay fork-safe are allowed:
    jemalloc's background threads and polars' spill clean-up (both restart or are unused in
    the child) and BLAS's workers (it re-initialises on fork).
    """
    import threading

    unsafe = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/comm", encoding="utf-8") as fh:
                name = fh.read().strip()
            if name.startswith("polars-") and name[7:].isdigit():
                unsafe.append(name)
    except OSError:  # no /proc: the Python threads are what can be checked
        pass
    return unsafe


def _serve(sock: Any, root: Path, loaded_at: float, error: str | None) -> tuple[int, int] | None:
    """Fork a spare for each request of the launcher, until it closes the socket.

    A request is one byte with two file descriptors (the spare's standard input and its
    "ready" pipe); the reply is a line: ``P<pid>`` (forked), ``E`` (this zygote failed to
    load: start spares of their own), ``S`` (its code changed on disk: start a new zygote) or
    ``T`` (a thread would make the fork unsafe). Returns the two descriptors in the forked
    child, ``None`` in the zygote when it is done.
    """
    import select
    import socket

    while True:
        _reap_children()
        readable, _, _ = select.select([sock], [], [], 1.0)
        if not readable:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(sock, 16, 4)
        except OSError:
            return None
        if not message:
            return None  # the launcher closed its end (or exited)
        reply = None
        if len(fds) != 2 or error is not None:
            reply = b"E\n"
        elif stale_modules(list(sys.modules.values()), root, loaded_at):
            reply = b"S\n"
        elif fork_unsafe_threads():
            print(
                f"pipelines.run_worker: zygote will not fork with {fork_unsafe_threads()}",
                file=sys.stderr,
            )
            reply = b"T\n"
        if reply is None:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                sock.close()
                return fds[0], fds[1]
            reply = f"P{pid}\n".encode()
        for fd in fds:
            os.close(fd)
        try:
            sock.sendall(reply)
        except OSError:
            return None
        if reply[:1] in (b"S", b"T"):
            return None  # of no use any more: the launcher starts another


def _zygote(spec: dict[str, Any]) -> None:
    """``--zygote``: load the code once, then fork every spare from this process."""
    import socket

    root, loaded_at, error = _load(spec)
    _signal_ready(spec)
    sock = socket.socket(fileno=int(spec["zygote_fd"]))
    served = _serve(sock, root, loaded_at, error)
    if served is None:
        sock.close()
        return
    stdin_fd, ready_fd = served  # this is a forked spare now
    sys.stdin = open(stdin_fd, encoding="utf-8", closefd=True)  # noqa: SIM115  # for the process
    _run_spare({**spec, "ready_fd": ready_fd}, root, loaded_at, error)


def main() -> None:
    if sys.argv[1:] == ["--run"]:
        _run_fresh()
        return
    sys.stdin.reconfigure(encoding="utf-8")  # type: ignore[union-attr]  # the launcher writes UTF-8
    first = sys.stdin.readline()
    if not first.strip():
        return
    try:
        spec: dict[str, Any] = json.loads(first)
    except ValueError:
        spec = {}
    if sys.argv[1:] == ["--zygote"]:
        _zygote(spec)
        return
    root, loaded_at, error = _load(spec) if spec else (Path.cwd(), time.time(), "no spec")
    _run_spare(spec, root, loaded_at, error)


if __name__ == "__main__":
    main()
