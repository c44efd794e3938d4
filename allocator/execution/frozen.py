"""A bar's plan, frozen: its inputs as canonical JSON and a digest of the orders they give.

docs/decisions/0012-live-bar-path.md, "The plan is stored, not recomputed": the first step that
needs a bar's plan stores what :func:`~allocator.execution.bar.plan_bar` was given (the sealed
intents, the starting positions, the budgets, the prices, the halted venues, the total
capital, the routing configuration, the account, and the instruments of the symbols involved)
with the orders it decided; every later step rebuilds the plan from those inputs with the same
pure ``plan_bar`` and compares the orders' digest with the stored one.

Everything here is pure: :func:`freeze` turns :class:`PlanInputs` and the orders into the
stored text and digest, :func:`thaw` reads the text back, :func:`orders_digest` is the sha256
of the orders' canonical JSON. Decimals are written as their exact text, so a round trip gives
equal values (and equal exponents, so the rebuilt orders print the same).

The risk stage's inputs (docs/spec-12-risk.md) are stored under ``risk``: the ``[risk]``
configuration, the book's and the venues' trading states with who set them, the planning
instant, the prices' times, the previous bar's prices and the venues' recent order counts. A
plan frozen before the stage existed has no ``risk`` and is rebuilt without it.

Why the instruments are stored (only those of the symbols involved): a change of the symbol
table between two runs would change the plan; with them stored, the rebuilt plan is a function
of the stored text alone, and the digest check catches only what it should, a code change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from allocator.config import RiskConfig, RiskLimits, RoutingConfig
from allocator.execution.instruments import Instrument, InstrumentTable
from allocator.execution.orders import AssetClass, NetOrder, Venue
from allocator.execution.records import Bar, Intent, StrategyBudget
from allocator.execution.risk import RiskInputs
from allocator.states import StrategyState, TradingState

__all__ = ["FORMAT", "PlanInputs", "freeze", "orders_digest", "orders_json", "thaw"]

FORMAT = 1
"""The version of the stored text; a reader refuses any other."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanInputs:
    """Everything :func:`~allocator.execution.bar.plan_bar` is given for one bar."""

    bar: Bar
    intents: tuple[Intent, ...]
    positions: Mapping[tuple[str, str], Decimal]
    budgets: Mapping[str, StrategyBudget] | None
    prices: Mapping[str, Decimal]
    instruments: InstrumentTable
    routing: RoutingConfig
    total_capital: Decimal
    account: str
    halted_venues: frozenset[Venue]
    risk: RiskInputs | None = None


def _d(value: Decimal) -> str:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"plan inputs must be finite Decimals, got {value!r}")
    return str(value)


def _canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def relevant_instruments(
    instruments: Mapping[str, Instrument],
    intents: Sequence[Intent],
    positions: Mapping[tuple[str, str], Decimal],
    routing: RoutingConfig,
) -> InstrumentTable:
    """Return the instruments ``plan_bar`` can look at: the intents', proxies', held ones."""
    symbols = {i.symbol for i in intents} | {s for _, s in positions}
    symbols |= {routing.proxy_map[s] for s in list(symbols) if s in routing.proxy_map}
    return InstrumentTable(instruments[s] for s in sorted(symbols) if s in instruments)


def orders_json(orders: Sequence[NetOrder]) -> list[dict[str, str]]:
    """Return the orders as canonical JSON-ready rows (every field, decimals as text)."""
    return [
        {
            "symbol": o.symbol,
            "asset_class": o.asset_class.value,
            "venue": o.venue.value,
            "side": o.side.value,
            "qty": _d(o.qty),
            "reference_price": _d(o.reference_price),
            "client_order_id": o.client_order_id,
            "buy_qty": _d(o.buy_qty),
            "sell_qty": _d(o.sell_qty),
        }
        for o in orders
    ]


def orders_digest(orders: Sequence[NetOrder]) -> str:
    """Return the sha256 (hex) of the orders' canonical JSON."""
    return hashlib.sha256(_canonical(orders_json(orders)).encode("utf-8")).hexdigest()


def _inputs_json(inputs: PlanInputs) -> dict[str, Any]:
    return {
        "bar": inputs.bar.key,
        "account": inputs.account,
        "total_capital": _d(inputs.total_capital),
        "intents": [
            {
                "intent_id": i.intent_id,
                "strategy": i.strategy,
                "symbol": i.symbol,
                "asset_class": i.asset_class.value,
                "qty": _d(i.qty),
                "bar": i.bar.key,
            }
            for i in sorted(inputs.intents, key=lambda i: i.intent_id)
        ],
        "positions": [[s, m, _d(q)] for (s, m), q in sorted(inputs.positions.items())],
        "budgets": None
        if inputs.budgets is None
        else {
            name: {
                "capital": _d(b.capital),
                "max_leverage": _d(b.max_leverage),
                "state": b.state.value,
            }
            for name, b in sorted(inputs.budgets.items())
        },
        "prices": {s: _d(p) for s, p in sorted(inputs.prices.items())},
        "instruments": [
            {
                "symbol": i.symbol,
                "asset_class": i.asset_class.value,
                "lot_size": _d(i.lot_size),
                "tick_size": _d(i.tick_size),
                "min_notional": _d(i.min_notional),
                "multiplier": _d(i.multiplier),
                "venue": None if i.venue is None else i.venue.value,
            }
            for i in sorted(inputs.instruments.values(), key=lambda i: i.symbol)
        ],
        "routing": {
            "multi_broker_threshold": _d(inputs.routing.multi_broker_threshold),
            "proxy_map": dict(sorted(inputs.routing.proxy_map.items())),
            "crypto_exchange": inputs.routing.crypto_exchange,
        },
        "halted_venues": sorted(v.value for v in inputs.halted_venues),
        **({} if inputs.risk is None else {"risk": _risk_json(inputs.risk)}),
    }


def _limits_json(limits: Any) -> dict[str, str | None]:
    return {
        name: None if getattr(limits, name) is None else _d(getattr(limits, name))
        for name in RiskLimits.KEYS
    }


def _risk_json(risk: RiskInputs) -> dict[str, Any]:
    """Return the risk stage's inputs as JSON: the config, the states, the clock."""
    c = risk.config

    def opt(value: Decimal | None) -> str | None:
        return None if value is None else _d(value)

    return {
        "config": {
            **_limits_json(c),
            "max_gross_exposure": opt(c.max_gross_exposure),
            "max_price_age_s": c.max_price_age_s,
            "max_price_move": opt(c.max_price_move),
            "max_orders_per_bar": c.max_orders_per_bar,
            "kill_drawdown": opt(c.kill_drawdown),
            "kill_daily_loss": opt(c.kill_daily_loss),
            "asset_classes": {k: _limits_json(v) for k, v in sorted(c.asset_classes.items())},
            "instruments": {k: _limits_json(v) for k, v in sorted(c.instruments.items())},
            "venues": {
                k: {
                    "orders_per_second": v.orders_per_second,
                    "orders_per_minute": v.orders_per_minute,
                }
                for k, v in sorted(c.venues.items())
            },
        },
        "trading_state": risk.trading_state.value,
        "venue_states": {v.value: s.value for v, s in sorted(risk.venue_states.items())},
        "state_detail": risk.state_detail,
        "venue_details": {v.value: d for v, d in sorted(risk.venue_details.items())},
        "planned_at": None if risk.planned_at is None else risk.planned_at.isoformat(),
        "price_times": {m: t.isoformat() for m, t in sorted(risk.price_times.items())},
        "previous_prices": {m: _d(p) for m, p in sorted(risk.previous_prices.items())},
        "recent_orders": {v.value: list(n) for v, n in sorted(risk.recent_orders.items())},
    }


def _given(table: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``table`` without its ``None`` values (keys not set), sub-tables likewise."""
    return {
        k: _given(v) if isinstance(v, Mapping) else v for k, v in table.items() if v is not None
    }


def _risk_of(raw: Mapping[str, Any]) -> RiskInputs:
    return RiskInputs(
        config=RiskConfig.from_mapping(_given(raw["config"])),
        trading_state=TradingState(raw["trading_state"]),
        venue_states={Venue(v): TradingState(s) for v, s in raw["venue_states"].items()},
        state_detail=str(raw["state_detail"]),
        venue_details={Venue(v): str(d) for v, d in raw["venue_details"].items()},
        planned_at=None if raw["planned_at"] is None else datetime.fromisoformat(raw["planned_at"]),
        price_times={m: datetime.fromisoformat(t) for m, t in raw["price_times"].items()},
        previous_prices={m: Decimal(p) for m, p in raw["previous_prices"].items()},
        recent_orders={Venue(v): tuple(int(x) for x in n) for v, n in raw["recent_orders"].items()},
    )


def freeze(inputs: PlanInputs, orders: Sequence[NetOrder]) -> tuple[str, str]:
    """Return a bar plan's stored text and digest.

    The text is the canonical JSON of its inputs and orders, the digest
    :func:`orders_digest` of the orders.
    """
    body = {"format": FORMAT, "inputs": _inputs_json(inputs), "orders": orders_json(orders)}
    return _canonical(body), orders_digest(orders)


def thaw(text: str) -> PlanInputs:
    """Return the :class:`PlanInputs` of a stored plan's text (:class:`ValueError`: not one)."""
    body = json.loads(text)
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"stored plan has format {body.get('format')!r}, expected {FORMAT}")
    raw = body["inputs"]
    budgets_raw: Mapping[str, Any] | None = raw["budgets"]
    routing = raw["routing"]
    return PlanInputs(
        bar=Bar(raw["bar"]),
        account=str(raw["account"]),
        total_capital=Decimal(raw["total_capital"]),
        intents=tuple(
            Intent(
                intent_id=i["intent_id"],
                strategy=i["strategy"],
                symbol=i["symbol"],
                asset_class=AssetClass(i["asset_class"]),
                qty=Decimal(i["qty"]),
                bar=Bar(i["bar"]),
            )
            for i in raw["intents"]
        ),
        positions={(s, m): Decimal(q) for s, m, q in raw["positions"]},
        budgets=None
        if budgets_raw is None
        else {
            name: StrategyBudget(
                capital=Decimal(b["capital"]),
                max_leverage=Decimal(b["max_leverage"]),
                state=StrategyState(b["state"]),
            )
            for name, b in budgets_raw.items()
        },
        prices={s: Decimal(p) for s, p in raw["prices"].items()},
        instruments=InstrumentTable(
            Instrument(
                symbol=i["symbol"],
                asset_class=AssetClass(i["asset_class"]),
                lot_size=Decimal(i["lot_size"]),
                tick_size=Decimal(i["tick_size"]),
                min_notional=Decimal(i["min_notional"]),
                multiplier=Decimal(i["multiplier"]),
                venue=None if i["venue"] is None else Venue(i["venue"]),
            )
            for i in raw["instruments"]
        ),
        routing=RoutingConfig(
            multi_broker_threshold=Decimal(routing["multi_broker_threshold"]),
            proxy_map=dict(routing["proxy_map"]),
            crypto_exchange=str(routing["crypto_exchange"]),
        ),
        halted_venues=frozenset(Venue(v) for v in raw["halted_venues"]),
        risk=None if "risk" not in raw else _risk_of(raw["risk"]),
    )


def halted_of(venues: Collection[Venue]) -> frozenset[Venue]:
    """Return ``venues`` as a frozen set of :class:`Venue`."""
    return frozenset(Venue(v) for v in venues)
