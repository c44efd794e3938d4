"""``allocator doctor``: a preflight of everything the allocator needs before it trades.

Each check is a function of a :class:`Context` that returns its :class:`Finding` (one, or one
per venue), each with a verdict (``ok``, ``warn`` or ``fail``) and a message. The checks, in
order (:data:`CHECKS`):

* ``config``: the settings load and validate (:func:`allocator.settings.load_settings`: the
  ``--config`` file or ``ALLOCATOR_CONFIG``, the ``ALLOCATOR_*`` variables, the flags);
* ``ledger``: the ledger exists and is migrated to the head revision (read, never migrated);
* ``credentials``: each venue in ``paper``/``live`` mode has its variables (names only, never
  their values), and ``DAGSTER_PG_URL`` is set when the instance keeps its storage in PostgreSQL;
* ``venue``: each venue of the pipeline (:func:`resources.brokers.registry.pipeline_venues`,
  in its mode) answers, and its positions and open orders agree with the ledger. Read only:
  the comparison is :func:`allocator.execution.reconcile.reconcile`, but nothing is recorded, so
  a preflight neither halts nor clears a venue (the bar job records its own reconciliation at
  start, and ``allocator broker reconcile`` is the operator's; docs/decisions/0017);
* ``clock``: each venue's server time against this machine's (Alpaca's clock, ccxt's
  ``fetch_time``, IB's ``reqCurrentTime``; the simulated venue runs on this machine's clock);
* ``bar_lane``: the bar lane is not halted, and no bar waits for a retry;
* ``dagster``: the instance file under ``DAGSTER_HOME`` exists, and its warm run launcher was
  tested with the installed Dagster.

A check that raises is reported as a ``fail`` of that check; the others still run. Every
message passes through :meth:`Context.scrub`, which blanks the value of every credential
variable, so a venue's error text cannot leak a secret.

**Adding a check.** Write a function ``def check_x(ctx: Context) -> Iterable[Finding]`` in any
module, list it in that module's ``DOCTOR_CHECKS`` (a sequence of such functions) and add the
module's name to :data:`CHECK_MODULES` (a module that is not installed is skipped, like a
command of ``cli.main``). Use ``ctx.settings`` / ``ctx.ledger()`` / ``ctx.broker(venue)``
(shared, opened once, closed at the end) and :func:`finding`; return ``warn`` for what an
operator should look at and ``fail`` for what must be fixed before trading.

Exit codes: 0 when no finding fails, 1 when one does, 2 on bad usage. ``--json`` prints
``{"ok": bool, "findings": [{"check", "subject", "verdict", "message"}, ...]}``.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from allocator.errors import AllocatorError
from allocator.execution.orders import Broker, Venue
from allocator.settings import INSTALL_ROOT, Settings, load_settings

__all__ = [
    "CHECKS",
    "CHECK_MODULES",
    "Context",
    "Finding",
    "Verdict",
    "finding",
    "register",
    "run_checks",
]

DEFAULT_MAX_SKEW_S = 1.0  # Binance refuses a request stamped more than 1 s ahead of its clock
DEFAULT_TIMEOUT_S = 10.0
POSTGRES_URL_VARIABLE = "DAGSTER_PG_URL"


class Verdict(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One result of a check: ``subject`` is what it is about (a venue, a file), or ``""``."""

    check: str
    subject: str
    verdict: Verdict
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "check": self.check,
            "subject": self.subject,
            "verdict": str(self.verdict),
            "message": self.message,
        }


def finding(check: str, verdict: Verdict, message: str, subject: str = "") -> Finding:
    return Finding(check=check, subject=subject, verdict=verdict, message=message)


@dataclass(kw_only=True)
class Context:
    """What the checks share: the inputs, and what one check opened for the next ones."""

    env: Mapping[str, str]
    config: str | None = None
    ledger_url: str | None = None
    max_skew_s: float = DEFAULT_MAX_SKEW_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    dagster_home: str | None = None
    settings: Settings | None = None
    settings_error: str = ""
    ledger_at_head: bool = False
    _ledger: Any = None
    _brokers: dict[Venue, Broker | Exception] = field(default_factory=dict)

    # -- secrets -----------------------------------------------------------------------------
    def secrets(self) -> list[str]:
        """The values never to print: every credential variable's, and ``DAGSTER_PG_URL``'s."""
        from resources.brokers.registry import VENUES

        names = [n for entry in VENUES.values() for n in entry.credentials]
        names += ["CCXT_PASSWORD", POSTGRES_URL_VARIABLE]
        values = [self.env.get(n, "") for n in names]
        if self.settings is not None and "@" in self.settings.ledger_url:
            values.append(self.settings.ledger_url)
        return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for value in self.secrets():
            text = text.replace(value, "***")
        return text

    # -- shared resources --------------------------------------------------------------------
    def ledger(self) -> Any:
        """The ledger, opened once without migrating (the ``ledger`` check passed first)."""
        if self._ledger is None:
            from resources.ledger import Ledger

            assert self.settings is not None
            self._ledger = Ledger(self.settings.ledger_url, upgrade=False)
        return self._ledger

    def broker(self, venue: Venue) -> Broker:
        """The pipeline's broker of ``venue`` in its mode (built once; a failure is re-raised
        to every check that asks)."""
        if venue not in self._brokers:
            try:
                self._brokers[venue] = self._build(venue)
            except Exception as exc:
                self._brokers[venue] = exc
        built = self._brokers[venue]
        if isinstance(built, Exception):
            raise built
        return built

    def _build(self, venue: Venue) -> Broker:
        from resources.brokers.registry import build_venue, venue_mode

        assert self.settings is not None
        if venue_mode(venue, self.env) != "sim":
            return build_venue(venue, self.settings, env=self.env, timeout_s=self.timeout_s)
        from resources.ledger import LedgerPaperState

        return build_venue(
            venue, self.settings, env=self.env, sim_state=LedgerPaperState(self.ledger())
        )

    def close(self) -> None:
        for built in self._brokers.values():
            close = getattr(built, "close", None)
            if not isinstance(built, Exception) and callable(close):
                try:
                    close()
                except Exception as exc:  # a preflight's clean-up must not hide its findings
                    print(f"allocator doctor: closing a venue failed: {exc}", file=sys.stderr)
        if self._ledger is not None:
            self._ledger.close()

    def home(self) -> Path:
        home = (
            self.dagster_home or self.env.get("DAGSTER_HOME") or str(INSTALL_ROOT / ".dagster_home")
        )
        return Path(home)


Check = Callable[[Context], Iterable[Finding]]


# -- the checks ------------------------------------------------------------------------------
def check_config(ctx: Context) -> Iterable[Finding]:
    try:
        ctx.settings = load_settings(config=ctx.config, env=ctx.env, ledger_url=ctx.ledger_url)
    except (AllocatorError, OSError, ValueError) as exc:
        ctx.settings_error = str(exc)
        return [finding("config", Verdict.FAIL, f"does not load: {exc}")]
    from resources.ledger.engine import shown_url

    source = ctx.settings.config_path or "defaults (no --config, no ALLOCATOR_CONFIG)"
    return [
        finding(
            "config",
            Verdict.OK,
            f"loads and validates: {source}; ledger {shown_url(ctx.settings.ledger_url)}",
        )
    ]


def _not_checked(check: str, why: str, subject: str = "") -> Finding:
    return finding(check, Verdict.WARN, f"not checked: {why}", subject)


def check_ledger(ctx: Context) -> Iterable[Finding]:
    if ctx.settings is None:
        return [_not_checked("ledger", "the config does not load")]
    from resources.ledger.engine import migration_state, shown_url

    url = ctx.settings.ledger_url
    try:
        revision, head = migration_state(url)
    except FileNotFoundError as exc:
        return [
            finding(
                "ledger",
                Verdict.FAIL,
                f"no ledger file at {exc}: any ledger command (e.g. `allocator book`) creates "
                "it at the head revision",
                shown_url(url),
            )
        ]
    except Exception as exc:
        return [finding("ledger", Verdict.FAIL, f"cannot be read: {exc}", shown_url(url))]
    if revision == head:
        ctx.ledger_at_head = True
        return [finding("ledger", Verdict.OK, f"migrated to head ({head})", shown_url(url))]
    what = "has no schema" if revision is None else f"is at revision {revision}"
    return [
        finding(
            "ledger",
            Verdict.FAIL,
            f"{what}, the head is {head}: opening it with any ledger command (e.g. `allocator "
            "book`) migrates it",
            shown_url(url),
        )
    ]


def _instance_config(ctx: Context) -> Mapping[str, Any] | None:
    path = ctx.home() / "dagster.yaml"
    if not path.exists():
        return None
    import yaml  # type: ignore[import-untyped]

    loaded = yaml.safe_load(path.read_text())
    return loaded if isinstance(loaded, Mapping) else {}


def check_credentials(ctx: Context) -> Iterable[Finding]:
    from resources.brokers.registry import VENUES, venue_mode

    out = []
    for venue, entry in VENUES.items():
        try:
            mode = venue_mode(venue, ctx.env)
        except AllocatorError as exc:
            out.append(finding("credentials", Verdict.FAIL, str(exc), venue.value))
            continue
        if mode == "sim":
            message = f"{entry.mode_variable} is sim: the simulated venue needs none"
            out.append(finding("credentials", Verdict.OK, message, venue.value))
            continue
        missing = [n for n in entry.credentials if not ctx.env.get(n)]
        if missing:
            message = f"{', '.join(missing)} not set ({venue.value} is in {mode} mode)"
            out.append(finding("credentials", Verdict.FAIL, message, venue.value))
        else:
            names = ", ".join(entry.credentials) or "no credential variables"
            out.append(finding("credentials", Verdict.OK, f"{mode} mode: {names} set", venue.value))
    instance = _instance_config(ctx)
    if instance is not None and "postgres" in (instance.get("storage") or {}):
        if ctx.env.get(POSTGRES_URL_VARIABLE):
            message = f"{POSTGRES_URL_VARIABLE} set (the instance's storage is on PostgreSQL)"
            out.append(finding("credentials", Verdict.OK, message, "dagster"))
        else:
            message = (
                f"{POSTGRES_URL_VARIABLE} not set, and {ctx.home() / 'dagster.yaml'} keeps the "
                "instance's storage in PostgreSQL"
            )
            out.append(finding("credentials", Verdict.FAIL, message, "dagster"))
    return out


def _baseline(
    ctx: Context,
    venue: Venue,
    broker: Broker,
    positions: Mapping[str, Decimal],
    managed: Mapping[str, Decimal],
) -> Mapping[str, Decimal] | None:
    """The baseline the bar's reconciliation would use, read without recording one."""
    if venue is not Venue.CCXT or getattr(broker, "mode", "sim") not in ("paper", "live"):
        return None
    stored: Mapping[str, Decimal] | None = ctx.ledger().venue_baseline(venue)
    if stored is not None:
        return stored
    if ctx.ledger().reconciliations(venue):
        return {}
    held = {s for s, q in managed.items() if q != 0}
    return {s: q for s, q in positions.items() if q != 0 and s not in held}


def check_venues(ctx: Context) -> Iterable[Finding]:
    from allocator.execution.reconcile import reconcile
    from resources.brokers.registry import VENUES, venue_mode

    if ctx.settings is None or not ctx.ledger_at_head:
        why = "the config does not load" if ctx.settings is None else "the ledger is not at head"
        return [_not_checked("venue", why, v.value) for v in VENUES]
    halts = ctx.ledger().venue_halts()
    out = []
    for venue, entry in VENUES.items():
        try:
            mode = venue_mode(venue, ctx.env)
            if mode != "sim" and any(not ctx.env.get(n) for n in entry.credentials):
                out.append(_not_checked("venue", "its credentials are missing", venue.value))
                continue
            broker = ctx.broker(venue)
            started = time.monotonic()
            positions = broker.positions()
            open_orders = broker.open_orders()
            took = time.monotonic() - started
        except Exception as exc:
            out.append(finding("venue", Verdict.FAIL, f"unreachable: {exc}", venue.value))
            continue
        expected = ctx.ledger().expectation(venue)
        reached = f"{mode} mode, answered in {took:.2f} s"
        if expected.uncertain:
            message = (
                f"{reached}; {len(expected.uncertain)} order(s) in flight in the journal: "
                "compared once the bar resolves them"
            )
            out.append(finding("venue", Verdict.WARN, message, venue.value))
            continue
        report = reconcile(
            venue.value,
            venue_positions=positions,
            venue_open_orders=open_orders,
            ledger_positions=expected.positions,
            ledger_open_orders=expected.open_orders,
            ledger_uncertain=expected.uncertain,
            baseline=_baseline(ctx, venue, broker, positions, expected.positions),
        )
        halt = halts.get(venue.value)
        if not report.ok:
            shown = "; ".join(str(d) for d in report.differences[:3])
            more = len(report.differences) - 3
            message = (
                f"{reached}; {len(report.differences)} difference(s) with the ledger: {shown}"
                + (f"; {more} more" if more > 0 else "")
                + " (the next bar halts new entries here)"
            )
            out.append(finding("venue", Verdict.FAIL, message, venue.value))
        elif halt is not None:
            message = (
                f"{reached}; agrees with the ledger now, but new entries are halted since "
                f"{halt.checked_at.isoformat()} (reconciliation {halt.id}): the next bar's "
                f"reconciliation or `allocator broker reconcile --venue {venue.value}` clears it"
            )
            out.append(finding("venue", Verdict.WARN, message, venue.value))
        else:
            message = (
                f"{reached}; reconciled: {len(report.venue_positions)} position(s) and "
                f"{len(report.venue_open_orders)} open order(s) agree with the ledger"
            )
            out.append(finding("venue", Verdict.OK, message, venue.value))
    return out


def skew_bounds(
    server: datetime, before: float, after: float, resolution_s: float
) -> tuple[float, float]:
    """The venue's clock minus this machine's, as an interval ``(lo, hi)`` in seconds.

    The server read ``server`` (truncated to ``resolution_s``) somewhere between ``before`` and
    ``after`` (this machine's ``time.time()`` around the request), so its true offset lies in
    ``[server - after, server + resolution_s - before]``.
    """
    stamp = server.timestamp()
    return stamp - after, stamp + resolution_s - before


def check_clocks(ctx: Context) -> Iterable[Finding]:
    from resources.brokers.registry import VENUES, venue_mode

    if ctx.settings is None:
        return [_not_checked("clock", "the config does not load", v.value) for v in VENUES]
    out = []
    limit = ctx.max_skew_s
    for venue, entry in VENUES.items():
        try:
            mode = venue_mode(venue, ctx.env)
        except AllocatorError as exc:
            out.append(finding("clock", Verdict.FAIL, str(exc), venue.value))
            continue
        if mode == "sim":
            message = "the simulated venue runs on this machine's clock: no skew"
            out.append(finding("clock", Verdict.OK, message, venue.value))
            continue
        if any(not ctx.env.get(n) for n in entry.credentials):
            out.append(_not_checked("clock", "its credentials are missing", venue.value))
            continue
        try:
            broker = ctx.broker(venue)
            server_time = getattr(broker, "server_time", None)
            if not callable(server_time):
                message = f"{type(broker).__name__} exposes no server time"
                out.append(finding("clock", Verdict.WARN, message, venue.value))
                continue
            before = time.time()
            server = server_time()
            after = time.time()
        except Exception as exc:
            out.append(finding("clock", Verdict.FAIL, f"no server time: {exc}", venue.value))
            continue
        resolution = float(getattr(broker, "server_time_resolution_s", 0.0))
        lo, hi = skew_bounds(server, before, after, resolution)
        shown = f"venue clock {(lo + hi) / 2:+.3f} s from this machine's (±{(hi - lo) / 2:.3f})"
        if max(abs(lo), abs(hi)) <= limit:
            out.append(finding("clock", Verdict.OK, f"{shown}; limit {limit:g} s", venue.value))
        elif lo > limit or hi < -limit:
            message = f"{shown}: beyond the {limit:g} s limit; synchronise this machine (NTP)"
            out.append(finding("clock", Verdict.FAIL, message, venue.value))
        else:
            message = f"{shown}: cannot tell whether within the {limit:g} s limit"
            out.append(finding("clock", Verdict.WARN, message, venue.value))
    return out


def check_bar_lane(ctx: Context) -> Iterable[Finding]:
    if ctx.settings is None or not ctx.ledger_at_head:
        why = "the config does not load" if ctx.settings is None else "the ledger is not at head"
        return [_not_checked("bar_lane", why)]
    ledger = ctx.ledger()
    halt = ledger.lane_halt()
    if halt is not None:
        message = (
            f"halted since {halt.halted_at.isoformat()}: {halt.reason} (`allocator bar retry "
            f"{halt.bar}` or `allocator bar abandon {halt.bar} --reason ...`)"
            if halt.bar
            else f"halted since {halt.halted_at.isoformat()}: {halt.reason}"
        )
        return [finding("bar_lane", Verdict.FAIL, message)]
    from allocator.execution.ledger import BarState

    failed = [b for b in ledger.open_bars() if b.state is BarState.FAILED]
    if failed:
        names = ", ".join(b.bar for b in failed[:5])
        message = f"not halted; {len(failed)} failed bar(s) wait for a retry: {names}"
        return [finding("bar_lane", Verdict.WARN, message)]
    return [finding("bar_lane", Verdict.OK, "not halted; no failed bar waits")]


def check_dagster(ctx: Context) -> Iterable[Finding]:
    path = ctx.home() / "dagster.yaml"
    instance = _instance_config(ctx)
    if instance is None:
        message = (
            f"no {path}: `allocator up` (or `make ui`) writes it from dagster.yaml; without "
            "it Dagster keeps no lasting run history"
        )
        return [finding("dagster", Verdict.WARN, message, str(path))]
    launcher = instance.get("run_launcher") or {}
    if launcher.get("class") != "WarmRunLauncher":
        message = "Dagster's default run launcher (each bar run starts cold, ~1.2 s slower)"
        return [finding("dagster", Verdict.OK, message, str(path))]
    import dagster

    try:  # the launcher's module checks the version as it is imported, and so does this
        from pipelines.run_launcher import check_dagster_version

        check_dagster_version()
    except dagster.DagsterInvariantViolationError as exc:
        return [finding("dagster", Verdict.FAIL, str(exc), str(path))]
    message = f"warm run launcher, tested with this dagster {dagster.__version__}"
    return [finding("dagster", Verdict.OK, message, str(path))]


CHECKS: list[Check] = [
    check_config,
    check_ledger,
    check_credentials,
    check_venues,
    check_clocks,
    check_bar_lane,
    check_dagster,
]
"""The built-in checks, in the order they run (later ones read what earlier ones found)."""

CHECK_MODULES: tuple[str, ...] = ("cli.risk",)
"""Modules whose ``DOCTOR_CHECKS`` run after :data:`CHECKS` (see "Adding a check")."""


def all_checks() -> list[Check]:
    checks = list(CHECKS)
    for name in CHECK_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that capability is not built in this checkout
                continue
            raise
        checks.extend(module.DOCTOR_CHECKS)
    return checks


def run_checks(ctx: Context, checks: Sequence[Check] | None = None) -> list[Finding]:
    """Run ``checks`` (default: :func:`all_checks`) in order; every message scrubbed."""
    findings: list[Finding] = []
    try:
        for check in all_checks() if checks is None else checks:
            name = check.__name__.removeprefix("check_")
            try:
                found = list(check(ctx))
            except Exception as exc:  # one broken check must not hide the others' findings
                found = [finding(name, Verdict.FAIL, f"the check failed: {exc!r}")]
            findings += [
                Finding(
                    check=f.check,
                    subject=ctx.scrub(f.subject),
                    verdict=f.verdict,
                    message=ctx.scrub(f.message),
                )
                for f in found
            ]
    finally:
        ctx.close()
    return findings


def table(findings: Sequence[Finding]) -> str:
    rows = [("VERDICT", "CHECK", "SUBJECT", "MESSAGE")]
    rows += [(str(f.verdict).upper(), f.check, f.subject, f.message) for f in findings]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in rows
    )


def _doctor(args: argparse.Namespace) -> int:
    ctx = Context(
        env=dict(os.environ),
        config=args.config,
        ledger_url=args.ledger,
        max_skew_s=args.max_skew_s,
        timeout_s=args.timeout_s,
        dagster_home=args.dagster_home,
    )
    findings = run_checks(ctx)
    failed = [f for f in findings if f.verdict is Verdict.FAIL]
    if args.json:
        print(json.dumps({"ok": not failed, "findings": [f.to_json() for f in findings]}))
    else:
        print(table(findings))
        warned = sum(f.verdict is Verdict.WARN for f in findings)
        print(f"\n{len(failed)} failed, {warned} warnings, {len(findings)} findings")
    return 1 if failed else 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must lie in (0, 3600] seconds, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="Preflight: config, ledger, credentials, venues, clocks, bar lane (exit 1 on a fail).",
    )
    parser.add_argument("--config", help="allocator TOML config (or ALLOCATOR_CONFIG)")
    parser.add_argument("--ledger", help="ledger URL (over ALLOCATOR_LEDGER_URL)")
    parser.add_argument(
        "--max-skew-s",
        type=_positive,
        default=DEFAULT_MAX_SKEW_S,
        help=f"largest clock skew against a venue [{DEFAULT_MAX_SKEW_S:g} s]",
    )
    parser.add_argument(
        "--timeout-s",
        type=_positive,
        default=DEFAULT_TIMEOUT_S,
        help=f"per request to a venue [{DEFAULT_TIMEOUT_S:g} s]",
    )
    parser.add_argument("--dagster-home", help="DAGSTER_HOME to check [$DAGSTER_HOME]")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.set_defaults(handler=_doctor)
