"""Who runs a bar run, and whether it still does: the run worker's identity and its lease.

A PID alone names a process only on one machine, in one PID namespace, until it is reused. The
warm run launcher (:mod:`pipelines.run_launcher`) therefore records, on each bar run, the full
identity of the worker process it started (:class:`WorkerIdentity`: host name, kernel boot id,
PID namespace, PID and the process's start time), and the worker keeps a **lease** in the
Dagster instance's key-value store, a heartbeat it renews every few seconds while the run lasts
(:func:`lease_key`, :class:`Lease`). From any process that opens the instance (the daemon, the
webserver, on this machine or another):

* a worker whose boot id and PID namespace are this process's own is *local*: it is alive when
  a process with its PID exists, is not a zombie, and **started at the recorded time** (a PID
  reused by a later process, e.g. the next spare worker after a container restart, has another
  start time, so it is never taken for the worker, nor signalled);
* any other worker is *remote* (another host, another container, a machine rebooted since): it
  is judged by its lease alone, alive while its heartbeat is younger than the timeout, and it is
  never signalled from here. It is cancelled through the instance instead: :func:`cancel_key`
  is a request the worker reads at its next heartbeat, and it interrupts itself (SIGINT, as
  Dagster does to its own run workers).

The start time and the boot id come from :mod:`psutil` and ``/proc/sys/kernel/random/boot_id``
(elsewhere than Linux, the boot time stands for the boot id and the namespace is unknown, which
is still unique per boot and host). Heartbeats compare the worker's wall clock with the
checker's, so the hosts' clocks must agree to well within the timeout (``allocator doctor``
checks the venues' skew, NTP the hosts').
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from assets.tags import BOOT_TAG, HOST_TAG, PID_NS_TAG, PID_TAG, STARTED_AT_TAG

__all__ = [
    "Lease",
    "WorkerIdentity",
    "cancel_key",
    "lease_key",
    "read_cancel",
    "read_lease",
    "request_cancel",
    "write_lease",
]

LEASE_PREFIX = "allocator/run_worker_lease/"
CANCEL_PREFIX = "allocator/run_worker_cancel/"
# psutil's start time is boot time + start ticks / CLK_TCK (10 ms); the same process always
# gives the same value, another process started in another tick a different one.
_START_TOLERANCE_S = 0.005


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"boot@{psutil.boot_time():.0f}"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _started_at(pid: int) -> float | None:
    """The start time of process ``pid`` (seconds since the epoch); ``None`` if there is none
    (or only a zombie)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerIdentity:
    """One process, named so that no other process on any machine is taken for it.

    ``started_at`` is the process's start time (seconds since the epoch, to the kernel's tick).
    """

    host: str
    boot_id: str
    pid_namespace: str
    pid: int
    started_at: float

    @classmethod
    def of(cls, pid: int) -> WorkerIdentity | None:
        """The identity of process ``pid`` of this machine and namespace; ``None`` if it is
        gone."""
        started = _started_at(pid)
        if started is None:
            return None
        return cls(
            host=socket.gethostname(),
            boot_id=_boot_id(),
            pid_namespace=_pid_namespace(),
            pid=pid,
            started_at=started,
        )

    @classmethod
    def here(cls) -> WorkerIdentity:
        """This process's identity."""
        me = cls.of(os.getpid())
        assert me is not None  # this process exists
        return me

    def tags(self) -> dict[str, str]:
        """The run tags that record this identity."""
        return {
            PID_TAG: str(self.pid),
            HOST_TAG: self.host,
            BOOT_TAG: self.boot_id,
            PID_NS_TAG: self.pid_namespace,
            STARTED_AT_TAG: repr(self.started_at),
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> WorkerIdentity | None:
        """The identity recorded on a run; ``None`` when the run has none (launched through the
        code server, or by a launcher from before identities were recorded)."""
        try:
            return cls(
                host=tags[HOST_TAG],
                boot_id=tags[BOOT_TAG],
                pid_namespace=tags.get(PID_NS_TAG, ""),
                pid=int(tags[PID_TAG]),
                started_at=float(tags[STARTED_AT_TAG]),
            )
        except (KeyError, ValueError):
            return None

    def same_machine(self, other: WorkerIdentity) -> bool:
        """Whether PIDs of ``other``'s process table mean the same processes as this one's:
        the same host, kernel boot and PID namespace."""
        return (self.host, self.boot_id, self.pid_namespace) == (
            other.host,
            other.boot_id,
            other.pid_namespace,
        )

    def is_running(self) -> bool:
        """Whether this process still runs; only meaningful on its own machine
        (:meth:`same_machine` as the caller). A reused PID is another process: not running."""
        started = _started_at(self.pid)
        return started is not None and abs(started - self.started_at) <= _START_TOLERANCE_S

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (boot {self.boot_id[:8]}, started {self.started_at})"


@dataclass(frozen=True, kw_only=True, slots=True)
class Lease:
    """The worker's heartbeat for one run: who holds it and when it was last renewed (the
    renewer's wall clock, seconds since the epoch)."""

    run_id: str
    worker: WorkerIdentity
    renewed_at: float

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.renewed_at

    def to_json(self) -> str:
        return json.dumps(
            {"run_id": self.run_id, "worker": asdict(self.worker), "renewed_at": self.renewed_at}
        )

    @classmethod
    def from_json(cls, text: str) -> Lease:
        data = json.loads(text)
        return cls(
            run_id=data["run_id"],
            worker=WorkerIdentity(**data["worker"]),
            renewed_at=float(data["renewed_at"]),
        )


def lease_key(run_id: str) -> str:
    return LEASE_PREFIX + run_id


def cancel_key(run_id: str) -> str:
    return CANCEL_PREFIX + run_id


def write_lease(instance: Any, lease: Lease) -> None:
    """Store (renew) ``lease`` in the instance's key-value store."""
    instance.run_storage.set_cursor_values({lease_key(lease.run_id): lease.to_json()})


def read_lease(instance: Any, run_id: str) -> Lease | None:
    """The stored lease of ``run_id``; ``None`` when there is none or it is unreadable."""
    text = instance.run_storage.get_cursor_values({lease_key(run_id)}).get(lease_key(run_id))
    if not text:
        return None
    try:
        return Lease.from_json(text)
    except (ValueError, KeyError, TypeError):
        return None


def request_cancel(instance: Any, run_id: str, by: str) -> None:
    """Ask the worker of ``run_id``, wherever it runs, to interrupt its run."""
    instance.run_storage.set_cursor_values(
        {cancel_key(run_id): json.dumps({"by": by, "at": time.time()})}
    )


def read_cancel(instance: Any, run_id: str) -> bool:
    """Whether a cancellation of ``run_id`` was requested."""
    return bool(
        instance.run_storage.get_cursor_values({cancel_key(run_id)}).get(cancel_key(run_id))
    )
