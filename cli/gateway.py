"""``allocator serve``, ``allocator strategy add|rotate|revoke|list`` and ``allocator operator
token``: the strategy gateway and its tokens (docs/decisions/0015-strategy-gateway.md).

``serve`` runs :func:`gateway.app.create_app` on uvicorn, on 127.0.0.1 unless ``--host`` is
given, port ``[gateway] port`` (8787) unless ``--port``. ``strategy add NAME`` registers the
strategy and prints its token once, alone on the last line of the output (the ledger keeps only
its SHA-256); ``rotate`` revokes the live token and prints a new one the same way; ``revoke``
leaves the strategy without a token (its bot gets 401). ``operator token [--name WHO]`` issues
the operator's token (``WHO`` is recorded as the author of every correction made with it).
Exit 0; 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from allocator.errors import InputError
from allocator.execution.inbox import MAX_TEXT
from allocator.settings import Settings, load_settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``serve``, ``strategy`` and ``operator`` to the ``allocator`` command."""
    serve = subparsers.add_parser("serve", help="run the strategy gateway (HTTP API)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: [gateway] port, 8787)")
    serve.add_argument(
        "--no-launch",
        action="store_true",
        help="never launch a bar's run from the gateway (the bar sensor does)",
    )
    _ledger_args(serve)
    serve.add_argument("--instruments", type=Path, help="symbol table CSV (default: bundled)")
    serve.set_defaults(handler=_serve)

    strategy = subparsers.add_parser("strategy", help="strategies and their gateway tokens")
    sub = strategy.add_subparsers(dest="strategy_command", required=True, metavar="ACTION")
    for name, text, handler in (
        ("add", "register a strategy and print its token (once)", _add),
        ("rotate", "revoke a strategy's token and print a new one (once)", _rotate),
        ("revoke", "revoke a strategy's token", _revoke),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("name")
        _ledger_args(cmd)
        cmd.set_defaults(handler=handler)
    listing = sub.add_parser("list", help="the strategies and their tokens' state (no secret)")
    _ledger_args(listing)
    listing.set_defaults(handler=_list)

    operator = subparsers.add_parser("operator", help="the operator's gateway token")
    op_sub = operator.add_subparsers(dest="operator_command", required=True, metavar="ACTION")
    token = op_sub.add_parser("token", help="issue the operator's token and print it (once)")
    token.add_argument("--name", default="operator", help="who holds it (journaled)")
    _ledger_args(token)
    token.set_defaults(handler=_operator_token)


def _ledger_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger", help="ledger URL (over ALLOCATOR_LEDGER_URL and the config)")
    parser.add_argument("--config", type=Path, help="allocator TOML config (or ALLOCATOR_CONFIG)")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        config=args.config, ledger_url=args.ledger, instruments=getattr(args, "instruments", None)
    )


def _name(text: str) -> str:
    name = text.strip()
    if not name or name != text:
        raise InputError("NAME", None, f"{text!r}: a strategy name without surrounding blanks")
    if len(name) > MAX_TEXT["strategy"] or not name.isprintable():
        raise InputError(
            "NAME", None, f"at most {MAX_TEXT['strategy']} printable characters, got {len(name)}"
        )
    return name


def _open(args: argparse.Namespace) -> Any:
    from resources.ledger import Ledger

    return Ledger(_settings(args).ledger_url)


def _issue(args: argparse.Namespace, method: str, said: str) -> int:
    """Print ``said`` then the token that the ledger's ``method`` (``add_strategy`` or
    ``rotate_token``) issued for NAME, alone on the last line."""
    name = _name(args.name)
    ledger = _open(args)
    try:
        token = getattr(ledger, method)(name)
    except ValueError as exc:
        raise InputError("NAME", None, str(exc)) from None
    finally:
        ledger.close()
    print(f"strategy {name!r}{said} (shown once, keep it secret):")
    print(token)
    return 0


def _add(args: argparse.Namespace) -> int:
    return _issue(args, "add_strategy", " registered; its gateway token")


def _rotate(args: argparse.Namespace) -> int:
    return _issue(args, "rotate_token", ": old token revoked; the new one")


def _revoke(args: argparse.Namespace) -> int:
    name = _name(args.name)
    ledger = _open(args)
    try:
        count = ledger.revoke_tokens(name)
    finally:
        ledger.close()
    print(f"strategy {name!r}: {count} token(s) revoked")
    return 0


def _list(args: argparse.Namespace) -> int:
    ledger = _open(args)
    try:
        holders = ledger.token_holders()
        names = ledger.strategies()
    finally:
        ledger.close()
    live = {s for kind, s, _, _, revoked in holders if kind == "strategy" and revoked is None}
    for name in names:
        print(f"{name!r}: {'token live' if name in live else 'no live token'}")
    operators = sorted(
        {label for kind, _, label, _, revoked in holders if kind == "operator" and not revoked}
    )
    print(f"operator tokens live: {', '.join(repr(x) for x in operators) or 'none'}")
    return 0


def _operator_token(args: argparse.Namespace) -> int:
    who = args.name.strip()
    if not who or len(who) > 200 or not who.isprintable():
        raise InputError("--name", None, "a printable name of at most 200 characters")
    ledger = _open(args)
    try:
        token = ledger.issue_operator_token(who)
    finally:
        ledger.close()
    print(f"operator token for {who!r} (shown once; its earlier one is revoked):")
    print(token)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app

    settings = _settings(args)
    port = settings.config.gateway.port if args.port is None else args.port
    if not 0 <= port <= 65_535:
        raise InputError("--port", None, f"must lie in [0, 65535], got {port}")
    app = create_app(settings, launcher=None if args.no_launch else "auto")
    uvicorn.run(app, host=args.host, port=port, log_level="info", access_log=True)
    return 0
