"""One runner per bar: the lease a runner holds on the bar while it runs it.

docs/decisions/0016-ccxt-fees-and-bar-leases.md. A bar can be run by ``allocator bar run`` and
by the bar job at the same time (an operator and the sensor, or two operators); both would
look the same orders up and send what they do not find. :func:`run_bar
<allocator.execution.bar.run_bar>` therefore takes the bar's lease before it journals or sends
anything, renews it from a heartbeat thread while it runs (every third of its length) and gives
it up when it ends, whatever the outcome. The lease is a row of the ledger
(``Ledger.claim_bar``: one conditional update, so of two claimers exactly one wins).

A lease is taken over only when it is free, expired, or its holder is proven gone: a
:class:`LeaseOwner` names its process (host, pid and the process's start time), so a runner on
the same host sees at once that a holder killed with its lease held is dead (the pid is gone,
a zombie, or another process's) and recovers the bar from the journal without waiting for the
expiry; on another host only the expiry tells. The bar sensor uses the same rule
(:func:`lease_is_live`) to skip a bar a live owner runs, and gives up the lease of a Dagster
run whose failure it records. Times are the runners' own UTC clocks: keep the hosts' clocks in
step (NTP) well within the lease's length.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from allocator.errors import BarLeasedError
from allocator.execution.ledger import BarStatus, Ledger
from allocator.execution.records import Bar

__all__ = ["DEFAULT_LEASE_S", "BarLease", "LeaseOwner", "hold_bar", "lease_is_live"]

DEFAULT_LEASE_S = 30.0
"""How long a lease holds without a heartbeat (seconds); renewed every third of it."""

_SEP = "|"


def _process_start(pid: int) -> str:
    """Return ``pid``'s start time in clock ticks since boot (Linux ``/proc``); ``""``: unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def _process_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return fields[0] if fields else ""


@dataclass(frozen=True, kw_only=True, slots=True)
class LeaseOwner:
    """Who holds a lease: a label and the process.

    Attributes
    ----------
    label : str
        What runs the bar: ``allocator bar run``, ``dagster:<run id>`` (no ``|``).
    host : str
        The host name.
    pid : int
        The process id.
    started : str
        The process's start time (``/proc``), ``""`` where unknown: with the pid, it names
        the process even once its pid is reused.
    """

    label: str
    host: str
    pid: int
    started: str = ""

    @classmethod
    def this_process(cls, label: str) -> LeaseOwner:
        """Return the owner for ``label`` in this process."""
        pid = os.getpid()
        return cls(
            label=label.replace(_SEP, "/")[:120],
            host=socket.gethostname()[:60],
            pid=pid,
            started=_process_start(pid),
        )

    def text(self) -> str:
        """Return the text stored in the ledger: ``label|host|pid|started``."""
        return _SEP.join((self.label, self.host, str(self.pid), self.started))

    @classmethod
    def parse(cls, text: str) -> LeaseOwner | None:
        """Return the owner written by :meth:`text`; ``None`` for any other text."""
        parts = text.split(_SEP)
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(label=parts[0], host=parts[1], pid=int(parts[2]), started=parts[3])

    def alive(self) -> bool | None:
        """Return whether the owner's process still runs.

        ``None`` when it cannot be told (another host), ``False`` when its pid is gone, a
        zombie or another process.
        """
        if self.host != socket.gethostname()[:60]:
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # a process of another user: it exists
        if _process_state(self.pid) == "Z":
            return False
        started = _process_start(self.pid)
        return not (self.started and started and started != self.started)


def lease_is_live(status: BarStatus, now: datetime) -> bool:
    """Return whether a live owner holds ``status``'s bar.

    That is a lease not expired at ``now`` whose holder is not proven gone
    (:meth:`LeaseOwner.alive`).
    """
    if status.lease_owner is None or status.lease_expires_at is None:
        return False
    if status.lease_expires_at <= now:
        return False
    owner = LeaseOwner.parse(status.lease_owner)
    return owner is None or owner.alive() is not False


class BarLease:
    """A held lease: renewed by a heartbeat thread until :meth:`release`.

    :meth:`check` raises :class:`~allocator.errors.BarLeasedError` once a renewal found the
    lease taken by someone else (this runner stalled past its expiry): send nothing more.
    """

    def __init__(
        self,
        ledger: Ledger,
        bar: Bar,
        owner: LeaseOwner,
        lease_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.ledger = ledger
        self.bar = bar
        self.owner = owner
        self.lease_s = lease_s
        self._clock = clock
        self._stop = threading.Event()
        self._lost = ""
        self._renew_error = ""
        self._thread = threading.Thread(target=self._beat, name=f"bar-lease-{bar.key}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                kept = self.ledger.renew_bar_lease(self.bar, self.owner.text(), until=self._until())
            except Exception as exc:  # retried at the next beat, named if the lease is lost
                self._renew_error = f" (last renewal error: {type(exc).__name__}: {exc})"
                continue
            if not kept:
                self._lost = "its lease expired and another runner took it over" + self._renew_error
                return
            self._renew_error = ""

    def _until(self) -> datetime:
        return self._clock() + timedelta(seconds=self.lease_s)

    def check(self) -> None:
        """Raise :class:`~allocator.errors.BarLeasedError` if the lease was lost."""
        if self._lost:
            raise BarLeasedError(f"bar {self.bar}: {self.owner.label} stops: {self._lost}")

    def release(self) -> None:
        """Stop the heartbeat and give the lease up (when it is still ours)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.ledger.release_bar_lease(self.bar, self.owner.text())


@contextlib.contextmanager
def hold_bar(
    ledger: Ledger,
    bar: Bar,
    *,
    label: str,
    lease_s: float = DEFAULT_LEASE_S,
    clock: Callable[[], datetime] | None = None,
) -> Iterator[BarLease]:
    """Hold ``bar``'s lease while the block runs (the bar must be sealed).

    Claimed at once when free, ours, expired or held by a process proven gone; otherwise
    :class:`~allocator.errors.BarLeasedError` names the holder and until when it holds. The
    lease is renewed every ``lease_s / 3`` seconds and given up when the block ends.
    """
    if not lease_s > 0:
        raise ValueError(f"lease_s must be > 0, got {lease_s}")
    now_of = clock or (lambda: datetime.now(UTC))
    owner = LeaseOwner.this_process(label)
    now = now_of()
    status = ledger.bar_status(bar)
    replacing = None
    if status is not None and status.lease_owner and status.lease_owner != owner.text():
        holder = LeaseOwner.parse(status.lease_owner)
        if holder is not None and holder.alive() is False:
            replacing = status.lease_owner
    until = now + timedelta(seconds=lease_s)
    if not ledger.claim_bar(bar, owner.text(), now=now, until=until, replacing=replacing):
        held = ledger.bar_status(bar)
        who = held.lease_owner if held is not None else None
        expires = held.lease_expires_at if held is not None else None
        holder = LeaseOwner.parse(who) if who else None
        named = f"{holder.label} (pid {holder.pid} on {holder.host})" if holder is not None else who
        raise BarLeasedError(
            f"bar {bar} is being run by {named} until "
            f"{expires.isoformat() if expires else '?'} unless it renews its lease: nothing "
            "sent; run the bar again once that run ends (or its lease expires)"
        )
    lease = BarLease(ledger, bar, owner, lease_s, now_of)
    lease._thread.start()
    try:
        yield lease
    finally:
        lease.release()
