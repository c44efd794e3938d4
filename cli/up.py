"""``allocator up``: the Dagster webserver, the dagster-daemon and the gateway, together.

Three child processes on one instance (``DAGSTER_HOME``) and one set of settings:

* ``dagster-webserver`` (the UI and its GraphQL API) on ``--host``:``--dagster-port``;
* ``dagster-daemon run`` (schedules, the bar sensor, run monitoring; no port);
* ``allocator serve`` (the strategy gateway) on ``--host``:``--gateway-port``.

The instance file is ``dagster.yaml`` (SQLite under ``DAGSTER_HOME``), or with
``--production`` ``dagster.postgres.yaml`` (storage on PostgreSQL at ``DAGSTER_PG_URL``, which
must then be set); ``--instance-yaml FILE`` (or ``DAGSTER_YAML``, as ``make`` reads it) picks
another. It is copied into ``DAGSTER_HOME`` as ``dagster.yaml`` when that differs, as ``make ui``
does. Everything binds ``127.0.0.1`` unless ``--host`` says otherwise.

They stop together. SIGINT or SIGTERM to ``up`` sends SIGTERM to each child, waits up to
``--grace-s`` for each and then kills what is left (its whole process group: the code servers it
started); the exit code is 0. If a child exits on its own, ``up`` stops the other two the same
way and exits 1, naming the child and its exit code (docs/decisions/0017-operating.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from allocator.errors import ConfigError
from allocator.settings import INSTALL_ROOT, load_settings

__all__ = ["register"]

PRODUCTION_YAML = "dagster.postgres.yaml"
DEFAULT_YAML = "dagster.yaml"
DEFAULT_GATEWAY_PORT = 8787
EXIT_STOPPED = 0
EXIT_CHILD_DIED = 1
EXIT_ERROR = 2
CODE_LOCATION = "pipelines.definitions"


@dataclass(frozen=True, kw_only=True, slots=True)
class ChildSpec:
    """One process ``up`` runs: its name, command line and where it listens (if anywhere)."""

    name: str
    argv: tuple[str, ...]
    url: str = ""
    host: str = ""
    port: int | None = None


def instance_yaml(args: argparse.Namespace, env: Mapping[str, str]) -> Path:
    """The instance file to run on: ``--instance-yaml``, else ``--production``'s, else
    ``DAGSTER_YAML``, else ``dagster.yaml`` (relative paths from the project's root)."""
    chosen = args.instance_yaml or (
        PRODUCTION_YAML if args.production else env.get("DAGSTER_YAML") or DEFAULT_YAML
    )
    path = Path(chosen)
    if not path.is_absolute() and not path.exists():
        path = INSTALL_ROOT / path
    if not path.is_file():
        raise ConfigError("--instance-yaml", f"no instance file {chosen}")
    return path


def _uses_postgres(path: Path) -> bool:
    import yaml  # type: ignore[import-untyped]

    loaded = yaml.safe_load(path.read_text()) or {}
    return isinstance(loaded, dict) and "postgres" in (loaded.get("storage") or {})


def prepare_home(home: Path, source: Path) -> bool:
    """Copy ``source`` into ``home`` as ``dagster.yaml`` unless it is already that; return
    whether it was written."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if target.exists() and target.read_bytes() == source.read_bytes():
        return False
    shutil.copyfile(source, target)
    return True


def gateway_available() -> bool:
    """Whether this checkout has ``allocator serve`` (the gateway)."""
    from cli.main import build_parser

    return any(
        isinstance(action, argparse._SubParsersAction) and "serve" in action.choices
        for action in build_parser()._actions
    )


def children(args: argparse.Namespace, gateway_port: int) -> list[ChildSpec]:
    bin_dir = Path(sys.executable).parent
    webserver = shutil.which("dagster-webserver", path=str(bin_dir)) or "dagster-webserver"
    daemon = shutil.which("dagster-daemon", path=str(bin_dir)) or "dagster-daemon"
    location = ("-m", CODE_LOCATION, "-d", str(INSTALL_ROOT))
    host = args.host
    shown = f"[{host}]" if ":" in host else host
    specs = [
        ChildSpec(
            name="webserver",
            argv=(webserver, "-h", host, "-p", str(args.dagster_port), *location),
            url=f"http://{shown}:{args.dagster_port}",
            host=host,
            port=args.dagster_port,
        ),
        ChildSpec(name="daemon", argv=(daemon, "run", *location)),
    ]
    if not args.no_gateway:
        serve = [sys.executable, "-m", "cli.main", "serve", "--host", host]
        serve += ["--port", str(gateway_port)]
        if args.config:
            serve += ["--config", str(args.config)]
        specs.append(
            ChildSpec(
                name="gateway",
                argv=tuple(serve),
                url=f"http://{shown}:{gateway_port}",
                host=host,
                port=gateway_port,
            )
        )
    return specs


def _listening(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    with contextlib.suppress(OSError), socket.create_connection((target, port), timeout=0.5):
        return True
    return False


class Supervisor:
    """Runs the children, watches them, stops them together."""

    def __init__(self, specs: Sequence[ChildSpec], env: Mapping[str, str], grace_s: float):
        self.specs = list(specs)
        self.env = dict(env)
        self.grace_s = grace_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = threading.Event()
        self.signal_name = ""

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self.stop_requested.set()

    def start(self) -> None:
        for spec in self.specs:
            # A session of its own: a terminal's Ctrl-C reaches `up` alone, which stops the
            # children in order; killing the group reaches the code servers a child started.
            proc = subprocess.Popen(
                spec.argv, env=self.env, cwd=str(INSTALL_ROOT), start_new_session=True
            )
            self.procs[spec.name] = proc
            where = f"will listen on {spec.url}" if spec.url else "no port"
            print(f"allocator up: {spec.name} started (pid {proc.pid}; {where})", flush=True)

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            return self._watch()
        finally:
            self.stop_all()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _watch(self) -> int:
        waiting = {s.name: s for s in self.specs if s.port is not None}
        while not self.stop_requested.wait(0.2):
            for spec in self.specs:
                code = self.procs[spec.name].poll()
                if code is not None:
                    others = [n for n in self.procs if n != spec.name]
                    print(
                        f"allocator up: the {spec.name} (pid {self.procs[spec.name].pid}) exited "
                        f"with code {code}; stopping the {' and the '.join(others)}",
                        file=sys.stderr,
                        flush=True,
                    )
                    return EXIT_CHILD_DIED
            for name, spec in list(waiting.items()):
                assert spec.port is not None
                if _listening(spec.host, spec.port):
                    print(f"allocator up: {name} listening on {spec.url}", flush=True)
                    del waiting[name]
        print(f"allocator up: {self.signal_name}: stopping all", flush=True)
        return EXIT_STOPPED

    def stop_all(self) -> None:
        alive = {n: p for n, p in self.procs.items() if p.poll() is None}
        for proc in alive.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for name, proc in alive.items():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(
                    f"allocator up: the {name} did not stop within {self.grace_s:g} s: killed",
                    file=sys.stderr,
                    flush=True,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for name, proc in self.procs.items():
            print(f"allocator up: {name} stopped (exit code {proc.returncode})", flush=True)


def _up(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.config:
        env["ALLOCATOR_CONFIG"] = str(Path(args.config).resolve())
    try:
        settings = load_settings(env=env)  # the children load the same; fail here, not thrice
        source = instance_yaml(args, env)
        if _uses_postgres(source) and not env.get("DAGSTER_PG_URL"):
            raise ConfigError(
                "DAGSTER_PG_URL",
                f"not set, and {source.name} keeps the instance's storage in PostgreSQL "
                "(DAGSTER_PG_URL=postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB)",
            )
        if not args.no_gateway and not gateway_available():
            raise ConfigError(
                "allocator serve",
                "the gateway is not in this checkout; start the rest with --no-gateway",
            )
    except ConfigError as exc:
        print(f"allocator up: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    home = Path(args.dagster_home or env.get("DAGSTER_HOME") or INSTALL_ROOT / ".dagster_home")
    env["DAGSTER_HOME"] = str(home.resolve())
    if prepare_home(home, source):
        print(f"allocator up: {home / 'dagster.yaml'} written from {source}", flush=True)
    gateway = getattr(settings.config, "gateway", None)
    port = args.gateway_port or getattr(gateway, "port", None) or DEFAULT_GATEWAY_PORT
    print(f"allocator up: instance {source.name} in DAGSTER_HOME={home}", flush=True)
    return Supervisor(children(args, int(port)), env, args.grace_s).run()


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"must lie in [1, 65535], got {value}")
    return value


def _grace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 600:
        raise argparse.ArgumentTypeError(f"must lie in [0, 600] seconds, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up", help="Run the Dagster webserver, the daemon and the gateway together."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind [127.0.0.1]")
    parser.add_argument("--dagster-port", type=_port, default=3000, help="webserver port [3000]")
    parser.add_argument(
        "--gateway-port", type=_port, default=None, help="gateway port [[gateway] port, 8787]"
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help=f"run on {PRODUCTION_YAML} (storage on PostgreSQL at DAGSTER_PG_URL)",
    )
    parser.add_argument(
        "--instance-yaml", help="instance file to copy into DAGSTER_HOME [$DAGSTER_YAML]"
    )
    parser.add_argument("--dagster-home", help="the instance's home [$DAGSTER_HOME]")
    parser.add_argument("--config", help="allocator TOML config (or ALLOCATOR_CONFIG)")
    parser.add_argument(
        "--no-gateway", action="store_true", help="the webserver and the daemon only"
    )
    parser.add_argument(
        "--grace-s", type=_grace, default=20.0, help="how long each child may take to stop [20]"
    )
    parser.set_defaults(handler=_up)
