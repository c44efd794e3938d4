"""Data-quality checks at every step (Great Expectations 1.x through :mod:`assets._gx`).

Each check turns the asset into the columns an expectation can test (derived booleans for the
rules GX has no single expectation for) and reports the failing rows. Every check before an
order is ``blocking``; the rule-set checks also block later bar runs (:mod:`assets.guard`).
"""

from decimal import Decimal

import dagster as dg
import numpy as np
import pandas as pd

from allocator.calendar import SessionCalendar
from allocator.dashboard import book_series, reported_vs_attributed
from allocator.execution.orders import OrderState, Venue
from allocator.execution.reasons import Reason
from allocator.returns_check import describe
from allocator.states import BreakerState, published_state
from assets._gx import combine, expect
from assets.dashboard import ledger_history
from assets.tags import bar_of
from assets.venues import bar_venues
from resources.brokers.paper.resource import PaperBrokerResource
from resources.dagster_resources import AllocatorSettings, LedgerResource, PricesResource

_TOL = 1e-9
_FINAL = [s.value for s in OrderState if s.is_final]


# -- the rule set ---------------------------------------------------------------------------


@dg.asset_check(asset="strategy_returns", blocking=True)
def returns_quality(
    strategy_returns: pd.DataFrame, settings: AllocatorSettings, ledger: LedgerResource
) -> dg.AssetCheckResult:
    """Unique (date, strategy), session dates, missing-value policy, |return| bound, every
    registered strategy present."""
    frame = strategy_returns.copy()
    config = settings.config()
    parsed = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
    frame["date_parses"] = parsed.notna()
    if frame["date_parses"].any():
        start = parsed.min().date()
        end = parsed.max().date()
        cal = SessionCalendar.load(config.calendar.name, start, end)
        sessions = {str(d)[:10] for d in cal.sessions}
        is_session = frame["date"].isin(sessions)
    else:
        is_session = pd.Series(False, index=frame.index)
    roll = settings.non_session_dates == "roll_forward"
    frame["date_is_session"] = frame["date_parses"] & (is_session | roll)
    bound = settings.max_abs_daily_return
    specs: list[tuple[object, ...]] = [
        ("compound_unique", ("date", "strategy")),
        ("true", "date_is_session"),
        ("between", "return", -bound, bound),
    ]
    if settings.missing_returns != "allow":
        specs.append(("not_null", "return"))
    with ledger.open() as store:
        registered = store.strategies()
    present = set(frame["strategy"])
    registry = pd.DataFrame(
        {"strategy": registered, "present": [s in present for s in registered]},
        columns=["strategy", "present"],
    )
    extra = {
        "non_session_rows": int((~is_session).sum()),
        "non_session_policy": settings.non_session_dates,
        "missing_values": int(frame["return"].isna().sum()),
        "missing_policy": settings.missing_returns,
        "max_abs_daily_return": bound,
    }
    return combine(
        expect(frame, specs, description="returns", extra=extra),
        expect(registry, [("true", "present")], description="registered strategies present"),
    )


@dg.asset_check(asset="strategy_vols", blocking=True)
def vols_quality(strategy_vols: pd.DataFrame) -> dg.AssetCheckResult:
    """Vols are finite and > 0 wherever the 60-session window is complete (exactly 0 where its
    values are all equal, SPEC §2: such a strategy is simply not eligible)."""
    frame = strategy_vols.copy()
    v = frame["vol_60d"].to_numpy(dtype=float)
    flat = frame["all_equal"].to_numpy(dtype=bool)
    positive = np.isfinite(v) & (v > 0)
    frame["vol_ok"] = ~frame["full_window"].to_numpy(dtype=bool) | np.where(flat, v == 0, positive)
    return expect(
        frame, [("true", "vol_ok"), ("between", "vol_60d", 0.0, None)], description="vols"
    )


@dg.asset_check(asset="risk_parity_weights", blocking=True)
def weights_quality(risk_parity_weights: pd.DataFrame) -> dg.AssetCheckResult:
    """Weights >= 0, benched at 0, summing to 1 (over the eligible at a recompute)."""
    frame = risk_parity_weights.copy()
    w = frame["base_weight"].to_numpy(dtype=float)
    total = float(w.sum())
    frame["benched_zero"] = ~frame["benched"].to_numpy(dtype=bool) | (w == 0)
    frame["sums_to_one"] = abs(total - 1) < _TOL or total == 0
    if bool(frame["recomputed_today"].any()) and bool(frame["eligible"].any()):
        eligible_sum = float(w[frame["eligible"].to_numpy(dtype=bool)].sum())
        frame["sums_to_one"] = frame["sums_to_one"] & (abs(eligible_sum - 1) < _TOL)
    return expect(
        frame,
        [("between", "base_weight", 0.0, 1.0), ("true", "benched_zero"), ("true", "sums_to_one")],
        description="weights",
        extra={"weight_sum": total},
    )


@dg.asset_check(asset="correlation_flags", blocking=True)
def flags_quality(
    correlation_flags: pd.DataFrame, settings: AllocatorSettings
) -> dg.AssetCheckResult:
    """Correlations in [-1, 1], symmetric, counters consistent with the flag and threshold."""
    cfg = settings.config().correlation
    frame = correlation_flags.copy()
    mirror = frame.rename(columns={"strategy_a": "strategy_b", "strategy_b": "strategy_a"})
    joined = frame.merge(
        mirror[["strategy_a", "strategy_b", "corr_90d"]],
        on=["strategy_a", "strategy_b"],
        how="left",
        suffixes=("", "_mirror"),
    )
    c = joined["corr_90d"].to_numpy(dtype=float)
    m = joined["corr_90d_mirror"].to_numpy(dtype=float)
    frame["symmetric"] = (np.isnan(c) & np.isnan(m)) | (c == m)
    breach = frame["breach_run"].to_numpy()
    calm = frame["calm_run"].to_numpy()
    with np.errstate(invalid="ignore"):
        above = c > cfg.threshold
        at_or_below = c <= cfg.threshold
    nan = np.isnan(c)
    frame["counters_ok"] = (
        (breach >= 0)
        & (calm >= 0)
        & (frame["flagged"].to_numpy(dtype=bool) == (breach >= cfg.persistence))
        & np.where(nan, (breach == 0) & (calm == 0), True)
        & np.where(above, (breach >= 1) & (calm == 0), True)
        & np.where(at_or_below, (calm >= 1) & (breach == 0), True)
    )
    return expect(
        frame,
        [
            ("between", "corr_90d", -1 - 1e-12, 1 + 1e-12),
            ("true", "symmetric"),
            ("true", "counters_ok"),
        ],
        description="correlation flags",
    )


@dg.asset_check(asset="breaker_multipliers", blocking=True)
def multipliers_quality(
    breaker_multipliers: pd.DataFrame, settings: AllocatorSettings
) -> dg.AssetCheckResult:
    """Multipliers in {0, 0.5, 1}, matching the breaker state."""
    half = settings.config().breaker.half_multiplier
    frame = breaker_multipliers.copy()
    expected = frame["breaker_state"].map(
        {
            BreakerState.NORMAL.label: 1.0,
            BreakerState.HALF.label: half,
            BreakerState.HALTED.label: 0.0,
        }
    )
    frame["state_matches"] = expected.to_numpy(dtype=float) == frame["multiplier"].to_numpy()
    return expect(
        frame,
        [
            ("in_set", "multiplier", [0.0, half, 1.0]),
            ("in_set", "breaker_state", [state.label for state in BreakerState]),
            ("true", "state_matches"),
        ],
        description="breaker multipliers",
    )


@dg.asset_check(asset="allocations", blocking=True)
def allocations_quality(
    allocations: pd.DataFrame, settings: AllocatorSettings, ledger: LedgerResource
) -> dg.AssetCheckResult:
    """Capital >= 0, within the book, 0 when benched or halted, and published in the ledger."""
    total = float(settings.config().allocation.total_capital)  # the frame's capital is float64
    frame = allocations.copy()
    cap = frame["capital"].to_numpy(dtype=float)
    takes_entries = [
        published_state(state, bool(benched)).takes_entries
        for state, benched in zip(frame["breaker_state"], frame["benched"], strict=True)
    ]
    frame["zero_when_out"] = np.array(takes_entries, dtype=bool) | (cap == 0)
    frame["within_book"] = float(cap.sum()) <= total * (1 + 1e-12)
    day = str(frame["date"].iloc[0]) if len(frame) else ""
    with ledger.open() as store:
        stored = {r.strategy: r.capital for r in store.allocations(day)} if day else {}
    frame["published"] = [
        s in stored and abs(float(stored[s]) - c) <= 1e-6 * max(1.0, abs(c))
        for s, c in zip(frame["strategy"], cap, strict=True)
    ]
    return expect(
        frame,
        [
            ("between", "capital", 0.0, total),
            ("true", "zero_when_out"),
            ("true", "within_book"),
            ("true", "published"),
        ],
        description="allocations",
    )


@dg.asset_check(
    asset="strategy_returns",
    blocking=False,
    description=(
        "Each strategy's reported return matches its attributed P&L ÷ published capital on "
        "every session it traded through the allocator, within [gateway] return_tolerance "
        "(docs/decisions/0015-strategy-gateway.md)."
    ),
)
def returns_match_attribution(
    settings: AllocatorSettings, ledger: LedgerResource, market: PricesResource
) -> dg.AssetCheckResult:
    """Self-reported returns against what the allocator saw (allocator/returns_check.py); the
    failure names the strategies and their sessions. Not blocking: the operator decides."""
    config = settings.config()
    tolerance = config.gateway.return_tolerance
    with ledger.open() as store:
        history = ledger_history(store, market.prices, settings.instruments(), config)
    if not history.bars:
        return dg.AssetCheckResult(passed=True, metadata={"bars": 0, "tolerance": tolerance})
    found = reported_vs_attributed(history, book_series(history), tolerance)
    by_strategy = describe(found, limit=10)
    return dg.AssetCheckResult(
        passed=not found,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "; ".join(f"{name}: {text}" for name, text in sorted(by_strategy.items()))
            or "every compared session agrees"
        )[:4000],
        metadata={
            "bars": len(history.bars),
            "tolerance": tolerance,
            "divergent_sessions": len(found),
            "strategies": sorted(by_strategy),
        },
    )


RULE_CHECKS = [
    returns_quality,
    vols_quality,
    weights_quality,
    flags_quality,
    multipliers_quality,
    allocations_quality,
]


def rule_check_keys() -> list[dg.AssetCheckKey]:
    """Every check whose latest evaluation must have passed before a bar trades."""
    return [key for check in RULE_CHECKS for key in check.check_keys]


# -- one bar --------------------------------------------------------------------------------


def _lot_multiple(qty: str, lot: Decimal | None) -> bool:
    if lot is None:
        return False
    q = Decimal(qty)
    return q != 0 and q % lot == 0


@dg.asset_check(asset="bar_intents", blocking=True)
def intents_quality(
    context: dg.AssetCheckExecutionContext,
    bar_intents: pd.DataFrame,
    settings: AllocatorSettings,
    ledger: LedgerResource,
) -> dg.AssetCheckResult:
    """Known strategies and symbols, lot multiples, unique ids, one bar."""
    bar = bar_of(context)
    instruments = settings.instruments()
    with ledger.open() as store:
        registered = store.strategies()
    frame = bar_intents.copy()
    frame["lot_multiple"] = [
        _lot_multiple(q, instruments[s].lot_size if s in instruments else None)
        for q, s in zip(frame["qty"], frame["symbol"], strict=True)
    ]
    return expect(
        frame,
        [
            ("in_set", "strategy", registered),
            ("in_set", "symbol", sorted(instruments)),
            ("true", "lot_multiple"),
            ("unique", "intent_id"),
            ("in_set", "bar", [bar.key]),
        ],
        engine=settings.bar_check_engine,
        description="intents",
    )


@dg.asset_check(asset="gated_intents", blocking=True)
def gated_quality(gated_intents: pd.DataFrame, settings: AllocatorSettings) -> dg.AssetCheckResult:
    """Accepted never exceeds requested (same sign); every cut has one known reason."""
    frame = gated_intents.copy()
    req = [Decimal(x) for x in frame["requested_qty"]]
    acc = [Decimal(x) for x in frame["accepted_qty"]]
    frame["within_request"] = [
        abs(a) <= abs(r) and a * r >= 0 for a, r in zip(acc, req, strict=True)
    ]
    frame["cut_has_reason"] = [
        a == r or isinstance(reason, str)
        for a, r, reason in zip(acc, req, frame["reason"], strict=True)
    ]
    return expect(
        frame,
        [
            ("true", "within_request"),
            ("true", "cut_has_reason"),
            ("in_set", "reason", [r.value for r in Reason]),
        ],
        engine=settings.bar_check_engine,
        description="gated intents",
    )


@dg.asset_check(asset="netted_orders", blocking=True)
def netted_quality(netted_orders: pd.DataFrame, settings: AllocatorSettings) -> dg.AssetCheckResult:
    """Each net equals the sum of its accepted intents; positive lot multiples; routable;
    notional under the per-order cap."""
    instruments = settings.instruments()
    frame = netted_orders.copy()
    frame["net_is_sum"] = [
        Decimal(n) == Decimal(s)
        for n, s in zip(frame["net_signed"], frame["accepted_sum"], strict=True)
    ]
    frame["positive_lots"] = [
        Decimal(q) > 0 and Decimal(lot) > 0 and Decimal(q) % Decimal(lot) == 0
        for q, lot in zip(frame["qty"], frame["lot_size"], strict=True)
    ]
    frame["routable"] = [
        s in instruments and v in {x.value for x in Venue}
        for s, v in zip(frame["symbol"], frame["venue"], strict=True)
    ]
    return expect(
        frame,
        [
            ("true", "net_is_sum"),
            ("true", "positive_lots"),
            ("true", "routable"),
            ("unique", "symbol"),
            ("between", "notional", 0.0, settings.max_order_notional),
        ],
        engine=settings.bar_check_engine,
        description="netted orders",
    )


@dg.asset_check(
    asset="submitted_orders", additional_ins={"netted_orders": dg.AssetIn("netted_orders")}
)
def submitted_quality(
    context: dg.AssetCheckExecutionContext,
    submitted_orders: pd.DataFrame,
    netted_orders: pd.DataFrame,
    settings: AllocatorSettings,
    ledger: LedgerResource,
) -> dg.AssetCheckResult:
    """One order per symbol, well-formed ids, every netted order journaled and settled (but
    those a trading state set after the plan was frozen cut at send time, docs/spec-12)."""
    frame = submitted_orders.copy()
    frame["id_ok"] = [
        len(c) <= 32 and c.isascii() and c.isalnum() for c in frame["client_order_id"]
    ]
    with ledger.open() as store:
        cut_at_send = {d.symbol for d in store.risk_denials(bar_of(context)) if d.stage == "send"}
    planned = netted_orders[["client_order_id", "symbol"]].copy()
    planned = planned[~planned["symbol"].isin(cut_at_send)]
    planned["journaled"] = planned["client_order_id"].isin(set(frame["client_order_id"]))
    return combine(
        expect(
            frame,
            [("unique", "symbol"), ("true", "id_ok"), ("in_set", "state", _FINAL)],
            engine=settings.bar_check_engine,
            description="submitted orders",
        ),
        expect(planned, [("true", "journaled")], engine=settings.bar_check_engine),
    )


@dg.asset_check(asset="fills", additional_ins={"submitted_orders": dg.AssetIn("submitted_orders")})
def fills_quality(
    fills: pd.DataFrame,
    submitted_orders: pd.DataFrame,
    settings: AllocatorSettings,
    ledger: LedgerResource,
    paper: PaperBrokerResource,
) -> dg.AssetCheckResult:
    """No duplicate fill ids; per order, recorded fills sum to the broker's own fills."""
    recorded: dict[str, Decimal] = {}
    for cid, qty in zip(fills["client_order_id"], fills["qty"], strict=True):
        recorded[cid] = recorded.get(cid, Decimal(0)) + Decimal(qty)
    rows = []
    with ledger.open() as store:
        brokers = bar_venues(settings, store, paper)
        for o in submitted_orders.itertuples(index=False):
            found = brokers[Venue(o.venue)].lookup(o.symbol, o.client_order_id)
            at_broker = sum((f.qty for f in found.fills), Decimal(0)) if found else Decimal(0)
            mine = recorded.get(o.client_order_id, Decimal(0))
            rows.append((o.client_order_id, str(mine), str(at_broker), mine == at_broker))
    per_order = pd.DataFrame(
        rows, columns=["client_order_id", "recorded_qty", "broker_qty", "matches_broker"]
    )
    return combine(
        expect(
            fills, [("unique", "fill_id")], engine=settings.bar_check_engine, description="fills"
        ),
        expect(per_order, [("true", "matches_broker")], engine=settings.bar_check_engine),
    )
