"""``allocator bar run|status``: one bar of the ledger, outside Dagster, on the same code path.

``bar run BAR`` takes the bar from the ledger's inbox to the configured venues and back with
:func:`allocator.execution.bar.run_bar`, the function the pipeline runs: it seals the bar (a
later intent for it is refused ``late``), freezes its plan (or rebuilds the frozen one: a
re-run never plans again from the live inbox), journals the orders, sends them and follows
them to the fill deadline (``[execution] fill_timeout_s``), journals every acknowledgement and
fill as it arrives and settles the bar from the journal. Safe to run again after any failure or
kill: the re-run looks up every journaled order and sends nothing twice. Before a bar is
planned, every venue is reconciled against the ledger (SPEC §9), as the pipeline does.

``bar status BAR [--json]`` prints the bar's lifecycle row, its journaled orders with their
states and fills, and the intents refused ``late`` for it.

``bar retry BAR [--by WHO]`` clears the bar lane's halt and makes the (failed) bar due for a
retry now: the bar sensor requests it again with a new run key. ``bar abandon BAR --reason WHY
[--by WHO]`` gives an open bar up, but only once every venue confirms it holds no order of it:
each journaled client order id of the bar is looked up at its venue (the venues of
:func:`resources.brokers.registry.pipeline_venues`); any order found, or a lookup that fails,
refuses with the list. Otherwise the bar is ``abandoned`` (who and why journaled on its row)
and the lane's halt is cleared (who and why journaled on the halt).

Exit codes: ``run`` 0 when the bar is settled (now or before), 3 when orders are still
unresolved (run it again), 2 on bad input or any other error; ``status`` 0, 2 on an error;
``retry`` 0, 2 when the bar is not open (never sealed, settled or abandoned); ``abandon`` 0,
2 when refused (a venue holds or may hold an order, the bar is not open) or on an error.

Settings come from :func:`allocator.settings.load_settings` (``--config`` or
``ALLOCATOR_CONFIG``, the ``ALLOCATOR_*`` environment, then the flags); the venues from
:func:`resources.brokers.registry.pipeline_venues`, the pipeline's own.

Structure: each sub-command is one ``_add_<name>(sub)`` that declares its parser and one
handler; :data:`SUBCOMMANDS` lists them, so a new one (``retry``, ``abandon``) is one small
function appended there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from allocator.errors import BarIncompleteError, BarLeasedError
from allocator.execution.instruments import DEFAULT_INSTRUMENTS, InstrumentTable, load_instruments
from allocator.execution.lease import hold_bar
from allocator.execution.prices import (
    bar_price_times,
    bar_prices,
    read_price_times,
    read_prices,
)
from allocator.execution.records import Bar, parse_bar
from allocator.settings import Settings, load_settings

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_UNRESOLVED", "SUBCOMMANDS", "register"]

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_UNRESOLVED = 3


def _no_checkpoint(_: str) -> None:
    return None


checkpoint_hook: Callable[[str], None] = _no_checkpoint
"""Called at every durable step of ``bar run`` (the kill tests replace it)."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bar", help="the bar: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")
    parser.add_argument(
        "--ledger", help="ledger URL (over ALLOCATOR_LEDGER_URL, over [execution] ledger_url)"
    )
    parser.add_argument("--config", type=Path, help="allocator TOML config (or ALLOCATOR_CONFIG)")


def _instruments(settings: Settings) -> InstrumentTable:
    return load_instruments(settings.instruments) if settings.instruments else DEFAULT_INSTRUMENTS


def _open_ledger(settings: Settings) -> Any:
    from resources.ledger import Ledger

    return Ledger(settings.ledger_url)


# -- run ----------------------------------------------------------------------------------------


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run one bar from the ledger's inbox to the venues and back")
    _common(run)
    run.add_argument(
        "--prices", type=Path, help="CSV symbol,price (default: ALLOCATOR_PRICES' file of the bar)"
    )
    run.add_argument("--instruments", type=Path, help="symbol table CSV (default: bundled)")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from allocator.execution.bar import run_bar
    from allocator.execution.reconcile import reconcile_at_start
    from resources.brokers.paper.client import PaperBrokerConfig
    from resources.brokers.registry import pipeline_venues

    settings = load_settings(
        config=args.config, ledger_url=args.ledger, instruments=args.instruments
    )
    config = settings.config
    bar = parse_bar(args.bar)
    instruments = _instruments(settings)
    prices: Mapping[str, Decimal] | None
    if args.prices is not None:
        prices = read_prices(args.prices)
        price_times = read_price_times(args.prices)
    else:
        prices = bar_prices(settings.prices, bar.key) or None
        price_times = bar_price_times(settings.prices, bar.key)
    ledger = _open_ledger(settings)
    try:
        if ledger.bar_done(bar):
            print(f"bar {bar}: already settled")
            return EXIT_OK
        paper = PaperBrokerConfig()
        brokers = pipeline_venues(instruments, ledger=ledger, paper=paper, settings=settings)
        if ledger.frozen_plan(bar) is None:
            # Not planned yet: the halts a reconciliation finds now go into the plan.
            reconcile_at_start(ledger, brokers, source="allocator bar run")
        try:
            run = run_bar(
                ledger=ledger,
                brokers=brokers,
                bar=bar,
                prices=prices,
                budgets=ledger.budgets(bar.key[:10], config.execution.max_leverage),
                instruments=instruments,
                routing=config.routing,
                total_capital=config.allocation.total_capital,
                account=config.execution.account,
                cash_quantum=config.execution.cash_quantum,
                fee_model=paper.fees.fee,
                checkpoint=checkpoint_hook,
                fill_timeout_s=config.execution.fill_timeout_s,
                poll_s=config.execution.poll_s,
                sealed_by="allocator bar run",
                risk=config.risk,
                price_times=price_times,
            )
        except BarIncompleteError as exc:
            print(f"allocator bar run: unresolved: {exc}", file=sys.stderr)
            return EXIT_UNRESOLVED
        fills = sum(len(v) for v in ledger.journaled_fills(bar).values())
    finally:
        ledger.close()
    if run.outcome is None:
        print(f"bar {bar}: already settled")
    else:
        print(
            f"bar {bar}: settled, {len(run.orders)} order(s), {fills} fill(s), "
            f"netting savings {run.outcome.savings}"
        )
    return EXIT_OK


# -- status -------------------------------------------------------------------------------------


def _add_status(sub: Any) -> None:
    status = sub.add_parser("status", help="a bar's lifecycle, orders, fills and late refusals")
    _common(status)
    status.add_argument("--json", action="store_true", help="one JSON object on stdout")
    status.set_defaults(handler=_status)


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):
        return value.value
    return value


def bar_report(ledger: Any, bar: Bar) -> dict[str, Any]:
    """Everything the ledger knows of ``bar``, as JSON-ready values (decimals as text)."""
    status = ledger.bar_status(bar)
    fills = ledger.journaled_fills(bar)
    unsettled = {f.fill_id for f in ledger.unsettled_fills()}
    orders = []
    for row in ledger.orders(bar):
        cid = str(row["client_order_id"])
        entry = {k: _text(v) for k, v in row.items()}
        entry["fills"] = [
            {
                "fill_id": f.fill_id,
                "qty": _text(f.qty),
                "price": _text(f.price),
                "fee": _text(f.fee),
                "fee_currency": f.fee_currency,  # null: the quote currency
                "ts": _text(f.ts),
                "settled": f.fill_id not in unsettled,
            }
            for f in fills.get(cid, ())
        ]
        orders.append(entry)
    lifecycle = None
    if status is not None:
        lifecycle = {
            name: _text(getattr(status, name))
            for name in (
                "state",
                "sealed_at",
                "sealed_by",
                "attempts",
                "last_error",
                "next_retry_at",
                "settled_at",
                "abandoned_by",
                "abandoned_reason",
                "lease_owner",  # who runs the bar now (allocator.execution.lease)
                "lease_expires_at",
            )
        }
    frozen = ledger.frozen_plan(bar)
    return {
        "bar": bar.key,
        "settled": bool(ledger.bar_done(bar)),
        "lifecycle": lifecycle,
        "plan_digest": None if frozen is None else frozen[1],
        "orders": orders,
        "refusals": [
            {"intent_id": r.key, "reason": r.reason.value, "detail": r.detail, "source": r.source}
            for r in ledger.refusals(bar)
        ],
    }


def _status(args: argparse.Namespace) -> int:
    settings = load_settings(config=args.config, ledger_url=args.ledger)
    bar = parse_bar(args.bar)
    ledger = _open_ledger(settings)
    try:
        report = bar_report(ledger, bar)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return EXIT_OK
    life = report["lifecycle"]
    print(f"bar {bar}: {'not sealed' if life is None else life['state']}")
    if life is not None:
        print(f"  sealed {life['sealed_at']} by {life['sealed_by']}, attempts {life['attempts']}")
        if life["last_error"]:
            print(f"  last error: {life['last_error']}")
    for o in report["orders"]:
        print(
            f"  order {o['client_order_id']} {o['side']} {o['qty']} {o['symbol']} at "
            f"{o['venue']} ({o['mode']}): {o['state']}, filled {o['filled_qty']}, "
            f"{len(o['fills'])} fill(s)"
        )
    for r in report["refusals"]:
        print(f"  refused {r['intent_id']}: {r['reason']}: {r['detail']}")
    return EXIT_OK


# -- retry, abandon (the bar lane: docs/decisions/0012-live-bar-path.md) ------------------------


def _operator(args: argparse.Namespace, command: str) -> str:
    import getpass

    who = args.by or os.environ.get("USER") or getpass.getuser()
    return f"{who} (allocator bar {command})"


def _add_retry(sub: Any) -> None:
    retry = sub.add_parser(
        "retry", help="clear the bar lane's halt and make a failed bar due for a retry now"
    )
    _common(retry)
    retry.add_argument("--by", help="who retries (default: $USER); journaled")
    retry.set_defaults(handler=_retry)


def _retry(args: argparse.Namespace) -> int:
    """Exit 0 when the bar is due now (the bar sensor requests it), 2 when it is not open."""
    settings = load_settings(config=args.config, ledger_url=args.ledger)
    bar = parse_bar(args.bar)
    by = _operator(args, "retry")
    ledger = _open_ledger(settings)
    try:
        try:
            status = ledger.retry_bar(bar)
        except ValueError as exc:
            print(f"allocator bar retry: {exc}", file=sys.stderr)
            return EXIT_ERROR
        cleared = ledger.clear_lane_halt(by=by, reason=f"allocator bar retry {bar}")
    finally:
        ledger.close()
    print(
        f"bar {bar}: {status.state}, {status.attempts} failed attempt(s); due for a retry now"
        + ("; the lane's halt is cleared" if cleared else "")
    )
    return EXIT_OK


def _add_abandon(sub: Any) -> None:
    abandon = sub.add_parser(
        "abandon",
        help="give a bar up, once every venue confirms it holds no order of it; clears the halt",
    )
    _common(abandon)
    abandon.add_argument("--reason", required=True, help="why (journaled with the bar)")
    abandon.add_argument("--by", help="who abandons (default: $USER); journaled")
    abandon.set_defaults(handler=_abandon)


def venue_orders_of_bar(ledger: Any, bar: Bar, brokers: Mapping[Any, Any]) -> list[str]:
    """Why the venues do not confirm that they hold no order of ``bar``: one line per journaled
    order a venue knows (whatever its state) or could not be asked about; empty when every
    venue answered "unknown id" for every one of them."""
    from allocator.execution.orders import Venue

    problems = []
    for row in ledger.orders(bar):
        cid, symbol, venue = str(row["client_order_id"]), str(row["symbol"]), str(row["venue"])
        broker = brokers.get(Venue(venue))
        if broker is None:
            problems.append(f"{cid} ({symbol}) at {venue}: no broker for the venue to ask")
            continue
        try:
            found = broker.lookup(symbol, cid)
        except Exception as exc:  # any failure to ask is not a confirmation
            problems.append(f"{cid} ({symbol}) at {venue}: the lookup failed: {exc}")
            continue
        if found is not None:
            problems.append(
                f"{cid} ({symbol}) at {venue}: the venue holds it ({found.state}, filled "
                f"{found.filled_qty})"
            )
    return problems


def _abandon(args: argparse.Namespace) -> int:
    """Exit 0 when abandoned, 2 when a venue holds (or may hold) an order of the bar, the bar
    is not open, or on any other error."""
    from resources.brokers.paper.client import PaperBrokerConfig
    from resources.brokers.registry import pipeline_venues

    settings = load_settings(config=args.config, ledger_url=args.ledger)
    bar = parse_bar(args.bar)
    by = _operator(args, "abandon")
    ledger = _open_ledger(settings)
    try:
        status = ledger.bar_status(bar)
        if status is None or status.state.is_final:
            state = "not sealed" if status is None else str(status.state)
            print(
                f"allocator bar abandon: bar {bar} is {state}: nothing to abandon", file=sys.stderr
            )
            return EXIT_ERROR
        brokers = pipeline_venues(
            _instruments(settings), ledger=ledger, paper=PaperBrokerConfig(), settings=settings
        )
        try:
            # Holding the bar's lease: no runner sends for it between the check and the mark.
            with hold_bar(ledger, bar, label="allocator bar abandon"):
                problems = venue_orders_of_bar(ledger, bar, brokers)
                if problems:
                    print(
                        f"allocator bar abandon: refused: bar {bar} is not confirmed free at "
                        "the venues (retry it instead: allocator bar retry):",
                        file=sys.stderr,
                    )
                    for line in problems:
                        print(f"  {line}", file=sys.stderr)
                    return EXIT_ERROR
                ledger.abandon_bar(bar, by=by, reason=args.reason)
        except (ValueError, BarLeasedError) as exc:
            print(f"allocator bar abandon: refused: {exc}", file=sys.stderr)
            return EXIT_ERROR
        cleared = ledger.clear_lane_halt(by=by, reason=f"bar {bar} abandoned: {args.reason}")
    finally:
        ledger.close()
    print(
        f"bar {bar}: abandoned by {by}: {args.reason}"
        + ("; the lane's halt is cleared" if cleared else "")
    )
    return EXIT_OK


SUBCOMMANDS: list[Callable[[Any], None]] = [_add_run, _add_status, _add_retry, _add_abandon]
"""The ``allocator bar`` sub-commands, each ``add(sub)``; a new one is appended here."""


def register(subparsers: Any) -> None:
    """Add ``bar`` and its sub-commands to the ``allocator`` command."""
    bar = subparsers.add_parser("bar", help="one bar of the ledger, outside Dagster")
    sub = bar.add_subparsers(dest="bar_command", required=True, metavar="ACTION")
    for add in SUBCOMMANDS:
        add(sub)
