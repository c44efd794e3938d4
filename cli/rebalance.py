"""``allocator rebalance [--date D]``: publish the allocation from the ledger's returns.

Not a second copy of the job: the command runs ``rebalance_job`` itself, in this process
(``execute_in_process``), with the resources the code location builds from the same settings,
tagged with session ``D`` (default: the last session with returns). So the ledger's returns are
replayed by the same assets and the same blocking data-quality checks (Great Expectations) run
before anything is published: a failing check stops the allocation from being written, and the
command exits 2 naming the check. The run is recorded in the Dagster instance of
``DAGSTER_HOME`` when it is set (so it shows in the UI beside the scheduled ones), in an
ephemeral one otherwise.

Exit 0 when published, 2 on bad input (no returns, ``D`` not a date, or not a session with
returns) or a failed check.
"""

from __future__ import annotations

import argparse
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from allocator.errors import InputError
from allocator.rebalance import decide, returns_frame
from allocator.settings import Settings, load_settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``rebalance`` to the ``allocator`` command."""
    cmd = subparsers.add_parser(
        "rebalance", help="publish the allocation from the ledger's returns (as rebalance_job)"
    )
    cmd.add_argument("--date", help="the decision session YYYY-MM-DD (default: the last)")
    cmd.add_argument("--ledger", help="ledger URL (over ALLOCATOR_LEDGER_URL and the config)")
    cmd.add_argument("--config", type=Path, help="allocator TOML config (or ALLOCATOR_CONFIG)")
    cmd.set_defaults(handler=_rebalance)


def _rebalance(args: argparse.Namespace) -> int:
    from resources.ledger import Ledger

    through: str | None = None
    if args.date is not None:
        text = args.date.strip()
        try:
            if len(text) != 10:
                raise ValueError
            through = date.fromisoformat(text).isoformat()
        except ValueError:
            raise InputError("--date", None, f"{args.date[:40]!r} is not YYYY-MM-DD") from None
    settings = load_settings(config=args.config, ledger_url=args.ledger)
    ledger = Ledger(settings.ledger_url)
    try:
        frame = returns_frame(ledger.returns(), through)
        if not frame["return"].notna().any():
            where = f" through {through}" if through else ""
            raise InputError("ledger:daily_returns", None, f"no returns{where}")
        decision = decide(frame, settings.config)
        if through is not None and decision.session != through:
            raise InputError(
                "--date",
                None,
                f"{through} is not a session with returns (the last one up to it is "
                f"{decision.session})",
            )
    finally:
        ledger.close()
    failed = _run_job(settings, decision.session)
    ledger = Ledger(settings.ledger_url)
    try:
        rows = ledger.allocations(decision.session)
        events = [e for e in ledger.events() if e.date == decision.session]
    finally:
        ledger.close()
    if failed:
        published = f"{len(rows)} allocation(s)" if rows else "nothing"
        raise InputError(
            "rebalance_job",
            None,
            f"session {decision.session}: {'; '.join(failed)} ({published} published for it)",
        )
    total = sum((r.capital for r in rows), Decimal(0))
    print(
        f"rebalance {decision.session}: {len(rows)} allocation(s) published "
        f"(capital deployed {total}), {len(events)} event(s)"
    )
    return 0


def _run_job(settings: Settings, session: str) -> list[str]:
    """Run ``rebalance_job`` for ``session``; return what failed (failed checks, steps)."""
    import os

    import dagster as dg

    from assets.tags import SESSION_TAG
    from pipelines.definitions import build_definitions
    from resources.dagster_resources import default_resources

    job = build_definitions(default_resources(settings=settings), settings).resolve_job_def(
        "rebalance_job"
    )
    instance = (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )
    with instance:
        result = job.execute_in_process(
            instance=instance, tags={SESSION_TAG: session}, raise_on_error=False
        )
    failed = [
        f"check {e.check_name} on {e.asset_key.to_user_string()} failed"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    failed += [f"step {e.step_key} failed" for e in result.all_events if e.is_step_failure]
    if not result.success and not failed:
        failed.append("the run failed")
    return failed
