"""``allocator broker submit|lookup|reconcile``: operator commands against one real venue.

The composition root of these commands: ``--venue`` names the real adapter (never the paper
broker) and overrides routing; it is built by :func:`resources.brokers.registry.operator_venue`
from the environment (credentials, mode) and the :func:`allocator.settings.load_settings`
record (the ``--config`` file or ``ALLOCATOR_CONFIG``, then ``ALLOCATOR_*``, then the flags),
the record every command and the code location use. ``submit`` is
:func:`allocator.execution.manual.submit_manual_order`: it journals the order in the ledger
(``pending_submit`` before sending, with the venue's mode, then its outcome; bar ``manual``)
and sends it through the pipeline's own :func:`allocator.execution.orders.submit_idempotently` (look
up, send at most once, resolve an ambiguous outcome by lookups). ``reconcile`` is the bar's
own :func:`allocator.execution.reconcile.reconcile_venue` (compare, the crypto account's
baseline, record): differences halt new entries on the venue, and only a later clean
reconciliation clears the halt. The ledger is the record's:
``--ledger``, else ``ALLOCATOR_LEDGER_URL``, else the config's ``[execution] ledger_url``, else
the default file.

Exit codes: ``submit`` 0 when the order is at the venue (placed now or already there), 3 when
the outcome is still unknown after the lookups, 2 on a rejection or any error; ``lookup`` 0
when found, 1 when the venue does not know the id, 2 on any error; ``reconcile`` 0 when the
venue agrees with the ledger, 1 when it differs (entries on that venue halt), 2 on an error.
Every call ends within 60 s: each request has a 10 s timeout and the lookups are bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from allocator.errors import AllocatorError
from allocator.execution.orders import (
    AssetClass,
    Broker,
    BrokerOrder,
    OrderRequest,
    OrderState,
    Side,
    Venue,
)
from allocator.settings import Settings, load_settings

__all__ = ["register"]

# Budget per call: connect + pre-submit lookup + submit + LOOKUPS x (delay + lookup) with each
# request <= TIMEOUT_S: 4 x 10 + 2 x 1.5 = 43 s worst case, under the 60 s promise.
TIMEOUT_S = 10.0
LOOKUPS = 2
LOOKUP_DELAY_S = 1.5

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_DIFFERENCES = 1
EXIT_ERROR = 2
EXIT_UNKNOWN = 3


def _qty(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal quantity: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"quantity must be > 0, got {text!r}")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config=args.config, ledger_url=getattr(args, "ledger", None))


def _make_broker(venue: str, settings: Settings) -> Broker:
    from resources.brokers.registry import operator_venue

    return operator_venue(venue, settings, timeout_s=TIMEOUT_S)


def _order_json(order: BrokerOrder) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id,
        "venue_order_id": order.venue_order_id,
        "symbol": order.symbol,
        "side": str(order.side),
        "qty": str(order.qty),
        "filled_qty": str(order.filled_qty),
        "avg_price": None if order.avg_price is None else str(order.avg_price),
        "fee": str(order.fee),
        "state": str(order.state),
        "fills": [
            {"fill_id": f.fill_id, "qty": str(f.qty), "price": str(f.price), "fee": str(f.fee)}
            for f in order.fills
        ],
    }


def _emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, sort_keys=True))


def _close(broker: Broker) -> None:
    close = getattr(broker, "close", None)
    if callable(close):
        close()


def _guarded(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except (AllocatorError, ValueError) as exc:
            print(f"allocator broker {args.broker_command}: error: {exc}", file=sys.stderr)
            return EXIT_ERROR

    return handler


def _submit(args: argparse.Namespace) -> int:
    from allocator.execution.manual import submit_manual_order
    from resources.ledger import Ledger

    settings = _settings(args)
    request = OrderRequest(
        client_order_id=args.client_order_id,
        symbol=args.symbol,
        asset_class=AssetClass(args.asset_class),
        side=Side(args.side),
        qty=args.qty,
        venue=Venue(args.venue),
        reference_price=args.reference_price,
    )
    broker = _make_broker(args.venue, settings)
    mode = str(getattr(broker, "mode", "paper"))
    try:
        ledger = Ledger(settings.ledger_url)
        try:
            outcome = submit_manual_order(
                ledger,
                broker,
                request,
                account=args.account,
                mode=mode,
                lookups=LOOKUPS,
                delay_s=LOOKUP_DELAY_S,
                sleep=time.sleep,
            )
        finally:
            ledger.close()
    finally:
        _close(broker)
    payload: dict[str, Any] = {
        "venue": broker.name,
        "mode": mode,
        "state": str(outcome.state),
        "placed_by_this_call": outcome.placed_by_this_call,
        "detail": outcome.detail,
        "order": None if outcome.order is None else _order_json(outcome.order),
    }
    _emit(payload)
    if outcome.state is OrderState.UNKNOWN:
        return EXIT_UNKNOWN
    if outcome.order is None or outcome.state is OrderState.REJECTED:
        return EXIT_ERROR
    return EXIT_OK


def _lookup(args: argparse.Namespace) -> int:
    broker = _make_broker(args.venue, _settings(args))
    try:
        order = broker.lookup(args.symbol, args.client_order_id)
    finally:
        _close(broker)
    if order is None:
        _emit({"venue": broker.name, "client_order_id": args.client_order_id, "found": False})
        return EXIT_NOT_FOUND
    _emit(
        {
            "venue": broker.name,
            "mode": getattr(broker, "mode", "paper"),
            "found": True,
            "order": _order_json(order),
        }
    )
    return EXIT_OK


def _reconcile(args: argparse.Namespace) -> int:
    from allocator.execution.reconcile import reconcile_venue
    from resources.ledger import Ledger

    settings = _settings(args)
    broker = _make_broker(args.venue, settings)
    try:
        ledger = Ledger(settings.ledger_url)
        try:
            # The bar's own path (the crypto baseline included), not a copy of it.
            done = reconcile_venue(
                ledger,
                args.venue,
                broker,
                source="allocator broker reconcile",
                expected=ledger.expectation(args.venue),
                label=broker.name,
            )
        finally:
            ledger.close()
    finally:
        _close(broker)
    expected, report, stored = done.expected, done.report, done.recorded
    print(report.summary())
    if stored.cleared:
        print(f"{args.venue}: halt cleared (reconciliations {list(stored.cleared)})")
    _emit(
        {
            "venue": broker.name,
            "ledger": expected.source,
            "ok": report.ok,
            "reconciliation_id": stored.record.id,
            "halted": stored.record.halts_entries,
            "cleared": list(stored.cleared),
            "differences": [
                {
                    "kind": str(d.kind),
                    "key": d.key,
                    "venue": d.venue_value,
                    "ledger": d.ledger_value,
                }
                for d in report.differences
            ],
        }
    )
    return EXIT_OK if report.ok else EXIT_DIFFERENCES


def _settings_args(parser: argparse.ArgumentParser, *, ledger: bool) -> None:
    parser.add_argument("--config", help="allocator TOML config (or ALLOCATOR_CONFIG)")
    if ledger:
        parser.add_argument(
            "--ledger", help="ledger URL (over ALLOCATOR_LEDGER_URL; default data/ledger.sqlite)"
        )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "broker", help="Submit, look up and reconcile orders at one real venue."
    )
    sub = parser.add_subparsers(dest="broker_command", required=True, metavar="ACTION")
    venues = [v.value for v in Venue]

    submit = sub.add_parser("submit", help="Place a market order once (looked up first).")
    submit.add_argument("--venue", required=True, choices=venues)
    submit.add_argument("--symbol", required=True)
    submit.add_argument("--asset-class", required=True, choices=[a.value for a in AssetClass])
    submit.add_argument("--side", required=True, choices=[s.value for s in Side])
    submit.add_argument("--qty", required=True, type=_qty, help="base units, e.g. 0.01 BTC")
    submit.add_argument("--client-order-id", required=True)
    submit.add_argument("--account", default="manual", help="journal account of the order [manual]")
    submit.add_argument(
        "--reference-price", type=_qty, default=None, help="journaled with the order (optional)"
    )
    _settings_args(submit, ledger=True)
    submit.set_defaults(handler=_guarded(_submit))

    lookup = sub.add_parser("lookup", help="Ask the venue for an order by client order id.")
    lookup.add_argument("--venue", required=True, choices=venues)
    lookup.add_argument("--symbol", required=True)
    lookup.add_argument("--client-order-id", required=True)
    _settings_args(lookup, ledger=False)
    lookup.set_defaults(handler=_guarded(_lookup))

    rec = sub.add_parser(
        "reconcile",
        help="Compare positions and open orders with the ledger; record it, halt or clear.",
    )
    rec.add_argument("--venue", required=True, choices=venues)
    _settings_args(rec, ledger=True)
    rec.set_defaults(handler=_guarded(_reconcile))
