"""Sub-commands of the execution core: ``intents submit``, ``returns submit`` and ``net``.

``intents submit`` and ``returns submit`` check a file row by row, store the valid rows in the
ledger and print one line per refused row (file, row, key, reason); they exit 0 when every row
was kept and 1 when some were refused. ``net`` runs one bar through routing, gating, netting
and the paper broker without touching the ledger and writes ``orders.csv``, ``fills.csv`` and
``refusals.csv``.

Every sub-command takes its settings from :func:`allocator.settings.load_settings` (the
``--config`` file or ``ALLOCATOR_CONFIG``, then the ``ALLOCATOR_*`` environment, then the
flags), the same record the code location runs with: with ``ALLOCATOR_LEDGER_URL`` set, a
bot's intents land in the ledger the pipeline trades from.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from allocator.errors import InputError
from allocator.execution.bar import plan_bar, settle_bar
from allocator.execution.inbox import (
    INTENT_COLUMNS,
    RETURN_COLUMNS,
    RowRefusal,
    check_intents,
    check_returns,
    read_rows,
)
from allocator.execution.instruments import DEFAULT_INSTRUMENTS, InstrumentTable, load_instruments
from allocator.execution.orders import BrokerExecution, submit_idempotently
from allocator.execution.prices import read_prices
from allocator.execution.reasons import SPEC7_REASONS, Reason
from allocator.execution.records import GatedIntent, StrategyBudget, parse_bar
from allocator.settings import Settings, load_settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``intents``, ``returns`` and ``net`` to the ``allocator`` command."""
    intents = subparsers.add_parser("intents", help="the intent inbox")
    intents_sub = intents.add_subparsers(dest="intents_command", required=True, metavar="ACTION")
    submit = intents_sub.add_parser("submit", help="store intents from a CSV or JSON-lines file")
    submit.add_argument("file", type=Path)
    _common_ledger_args(submit)
    submit.add_argument("--instruments", type=Path, help="symbol table CSV (default: bundled)")
    submit.add_argument("--now", help="the current instant, ISO-8601 with a zone (default: now)")
    submit.set_defaults(handler=_intents_submit)

    returns = subparsers.add_parser("returns", help="the strategies' daily returns")
    returns_sub = returns.add_subparsers(dest="returns_command", required=True, metavar="ACTION")
    rsubmit = returns_sub.add_parser("submit", help="store date,strategy,return rows")
    rsubmit.add_argument("file", type=Path)
    rsubmit.add_argument(
        "--correction", action="store_true", help="restate returns already stored (kept in history)"
    )
    _common_ledger_args(rsubmit)
    rsubmit.set_defaults(handler=_returns_submit)

    net = subparsers.add_parser("net", help="run one bar offline: gate, net, route, paper-fill")
    net.add_argument("intents", type=Path)
    net.add_argument("--prices", type=Path, required=True, help="CSV symbol,price")
    net.add_argument("--out", type=Path, required=True, help="output folder (created)")
    net.add_argument("--capital", type=Path, help="CSV strategy,capital,max_leverage")
    net.add_argument("--positions", type=Path, help="CSV strategy,symbol,qty")
    net.add_argument("--instruments", type=Path, help="CSV symbol,asset_class,lot_size,...")
    net.add_argument("--account", help="account name in the client order ids")
    net.add_argument("--total-capital", help="book size for the routing threshold")
    net.add_argument("--config", type=Path, help="allocator TOML config")
    net.set_defaults(handler=_net)


def _common_ledger_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ledger",
        help="ledger URL (over ALLOCATOR_LEDGER_URL, over the config's [execution] ledger_url; "
        "default: data/ledger.sqlite)",
    )
    parser.add_argument("--config", type=Path, help="allocator TOML config (or ALLOCATOR_CONFIG)")


def _instruments(settings: Settings) -> InstrumentTable:
    return load_instruments(settings.instruments) if settings.instruments else DEFAULT_INSTRUMENTS


def _open_ledger(settings: Settings) -> Any:
    from resources.ledger import Ledger  # the store lives with the resources

    return Ledger(settings.ledger_url)


def _print_refusals(refusals: Iterable[RowRefusal]) -> int:
    count = 0
    for item in refusals:
        print(f"refused: {item}", file=sys.stderr)
        count += 1
    return count


def _intents_submit(args: argparse.Namespace) -> int:
    settings = load_settings(
        config=args.config, ledger_url=args.ledger, instruments=args.instruments
    )
    config = settings.config
    instruments = _instruments(settings)
    now = datetime.now(UTC)
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
            now - config.execution.bar_tolerance * timedelta(
                seconds=config.execution.bar_interval_seconds
            )
        except (ValueError, OverflowError):
            raise InputError("--now", None, f"{args.now!r} is not an ISO-8601 instant") from None
        if now.tzinfo is None:
            raise InputError("--now", None, f"{args.now!r} needs a timezone")
    ledger = _open_ledger(settings)
    try:
        source = str(args.file)
        rows = read_rows(args.file, INTENT_COLUMNS)
        report, refused = ledger.submit_intent_rows(
            rows, source, execution=config.execution, instruments=instruments, now=now
        )
    finally:
        ledger.close()
    bad = _print_refusals([*refused, *_file_rows(report.refused, rows)])
    print(
        f"{source}: {report.accepted} intent(s) stored, {report.unchanged} already stored, "
        f"{bad} refused"
    )
    return 1 if bad else 0


def _file_rows(
    refusals: Iterable[RowRefusal], rows: Sequence[tuple[int, Mapping[str, str]]]
) -> list[RowRefusal]:
    """The ledger's refusals with the file's row number of their intent id (the ledger counts
    the intents it was given, not the file's rows)."""
    first: dict[str, int] = {}
    for number, row in rows:
        first.setdefault((row.get("intent_id") or "").strip(), number)
    return [replace(item, row=first[item.key]) if item.key in first else item for item in refusals]


def _returns_submit(args: argparse.Namespace) -> int:
    settings = load_settings(config=args.config, ledger_url=args.ledger)
    source = str(args.file)
    rows, refused = check_returns(read_rows(args.file, RETURN_COLUMNS), source)
    ledger = _open_ledger(settings)
    try:
        report = ledger.submit_returns(rows, correction=args.correction, source=source)
    finally:
        ledger.close()
    bad = _print_refusals([*refused, *report.refused])
    print(
        f"{source}: {report.accepted} return(s) stored, {report.unchanged} already stored, "
        f"{bad} refused"
    )
    return 1 if bad else 0


# -- net ----------------------------------------------------------------------------------------


def _decimal(source: str, row: int, name: str, text: str | None) -> Decimal:
    try:
        value = Decimal((text or "").strip())
    except InvalidOperation:
        raise InputError(source, row, f"{name} {text!r} is not a number") from None
    if not value.is_finite():
        raise InputError(source, row, f"{name} {text!r} is not finite")
    return value


def _read_csv(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    rows = read_rows(path, columns)
    for number, row in rows:
        for column in columns:
            if not (row.get(column) or "").strip():
                raise InputError(str(path), number, f"missing {column}")
    return rows


def _read_capital(path: Path, default_leverage: Decimal) -> dict[str, StrategyBudget]:
    out: dict[str, StrategyBudget] = {}
    for number, row in _read_csv(path, ("strategy", "capital")):
        name = row["strategy"].strip()
        capital = _decimal(str(path), number, "capital", row["capital"])
        leverage_text = (row.get("max_leverage") or "").strip()
        leverage = (
            _decimal(str(path), number, "max_leverage", leverage_text)
            if leverage_text
            else default_leverage
        )
        if capital < 0 or leverage < 0:
            raise InputError(str(path), number, "capital and max_leverage must be >= 0")
        if name in out:
            raise InputError(str(path), number, f"strategy {name} is listed twice")
        out[name] = StrategyBudget(capital=capital, max_leverage=leverage)
    return out


def _read_positions(path: Path) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = {}
    for number, row in _read_csv(path, ("strategy", "symbol", "qty")):
        key = (row["strategy"].strip(), row["symbol"].strip())
        if key in out:
            raise InputError(str(path), number, f"position {key[0]}/{key[1]} is listed twice")
        out[key] = _decimal(str(path), number, "qty", row["qty"])
    return out


def _fmt(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _refusal_of_row(item: RowRefusal, row: Mapping[str, str]) -> dict[str, str]:
    # refusals.csv speaks SPEC §7's vocabulary: a row the inbox refused for another reason
    # (an unknown asset class, a duplicate id) is an ``invalid`` intent there.
    reason = item.reason if item.reason in SPEC7_REASONS else Reason.INVALID
    return {
        "intent_id": item.key,
        "strategy": (row.get("strategy") or "").strip(),
        "symbol": (row.get("symbol") or "").strip(),
        "requested_qty": (row.get("qty") or "").strip(),
        "accepted_qty": "0",
        "reason": reason.value,
    }


def _net(args: argparse.Namespace) -> int:
    # The venues of the pipeline (the built-in simulated venue everywhere), kept in memory.
    from resources.brokers.paper.client import PaperBrokerConfig
    from resources.brokers.registry import pipeline_venues

    settings = load_settings(config=args.config, instruments=args.instruments)
    config = settings.config
    instruments = _instruments(settings)
    source = str(args.intents)
    rows = read_rows(args.intents, INTENT_COLUMNS)
    by_number = dict(rows)
    # The bar's age is not checked here; strategies are whatever the file names.
    intents, refused_rows = check_intents(
        rows,
        source,
        strategies=None,
        instruments=None,
        now=None,
        max_intent_qty=config.execution.max_intent_qty,
    )
    bars = sorted({i.bar.key for i in intents})
    if len(bars) > 1:
        raise InputError(source, None, f"intents span several bars ({', '.join(bars[:3])})")
    prices = read_prices(args.prices)
    leverage = config.execution.max_leverage
    budgets = _read_capital(args.capital, leverage) if args.capital else None
    positions = _read_positions(args.positions) if args.positions else {}
    if args.total_capital is not None:
        total = _decimal("--total-capital", 0, "value", args.total_capital)
    elif budgets is not None:
        total = sum((b.capital for b in budgets.values()), Decimal(0))
    else:
        total = config.allocation.total_capital
    account = args.account or config.execution.account
    if not account.isalnum():
        raise InputError("--account", None, f"{account!r} must be [A-Za-z0-9]")
    bar = parse_bar(bars[0]) if bars else parse_bar("1970-01-01")
    plan = plan_bar(
        intents,
        bar=bar,
        prices=prices,
        positions=positions,
        budgets=budgets,
        instruments=instruments,
        routing=config.routing,
        total_capital=total,
        account=account,
    )
    paper = PaperBrokerConfig()
    brokers = pipeline_venues(instruments, paper=paper, settings=settings)
    executions: dict[str, BrokerExecution] = {}
    order_rows: list[dict[str, str]] = []
    for order in plan.orders:
        outcome = submit_idempotently(
            brokers[order.venue],
            order.request(),
            lookups=0,
        )
        placed = outcome.order
        filled = placed.filled_qty if placed else Decimal(0)
        fee = placed.fee if placed else Decimal(0)
        avg = placed.avg_price if placed else None
        executions[order.symbol] = BrokerExecution(filled_qty=filled, avg_price=avg, fee=fee)
        order_rows.append(
            {
                "symbol": order.symbol,
                "side": order.side.value,
                "qty": _fmt(order.qty),
                "venue": order.venue.value,
                "client_order_id": order.client_order_id,
                "filled_qty": _fmt(filled),
                "avg_price": "" if avg is None else _fmt(avg),
                "fee": _fmt(fee),
            }
        )
    settled = settle_bar(
        plan,
        executions,
        cash_quantum=config.execution.cash_quantum,
        fee_model=paper.fees.fee,
    )
    refusals = [_refusal_of_row(r, by_number.get(r.row, {})) for r in refused_rows]
    refusals += [_refusal_of_gated(g) for g in settled.gated if g.reason is not None]
    refusals.sort(key=lambda r: r["intent_id"])
    fills = sorted(settled.fills, key=lambda f: (f.strategy, f.symbol, f.internal))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    _write(
        out / "orders.csv",
        ("symbol", "side", "qty", "venue", "client_order_id", "filled_qty", "avg_price", "fee"),
        order_rows,
    )
    _write(
        out / "fills.csv",
        ("strategy", "symbol", "qty", "price", "fee", "internal"),
        [
            {
                "strategy": f.strategy,
                "symbol": f.symbol,
                "qty": _fmt(f.qty),
                "price": _fmt(f.price),
                "fee": _fmt(f.fee),
                "internal": "true" if f.internal else "false",
            }
            for f in fills
        ],
    )
    _write(
        out / "refusals.csv",
        ("intent_id", "strategy", "symbol", "requested_qty", "accepted_qty", "reason"),
        refusals,
    )
    print(
        f"{source}: {len(plan.orders)} order(s), {len(fills)} fill row(s), "
        f"{len(refusals)} refusal(s), netting savings {_fmt(settled.savings)}"
    )
    return 0


def _refusal_of_gated(g: GatedIntent) -> dict[str, str]:
    assert g.reason is not None
    return {
        "intent_id": g.intent_id,
        "strategy": g.strategy,
        "symbol": g.symbol,
        "requested_qty": _fmt(g.requested_qty),
        "accepted_qty": _fmt(g.accepted_qty),
        "reason": g.reason.value,
    }


def _write(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
