"""The end-to-end demo: six reference strategies trading real market history through the
whole allocator, with the paper broker, then the final state materialised through Dagster.

What runs is the production code, session by session over the bundled S&P 500 closes
(:mod:`demo.marketdata`):

* at each bar (a session's close) every strategy sizes its held target weights to the capital
  the ledger published for it and submits its intents to the ledger's inbox; then
  :func:`allocator.execution.run_bar` — the same function the ``submitted_orders`` asset
  calls — gates, nets, routes, sends to the paper broker (its orders kept in the ledger) and
  records fills, attribution and netting savings;
* at the session's close each strategy's own return goes into the ledger and the rules decide
  with :class:`allocator.replay.AllocatorEngine` (the engine the ``rule_set`` asset replays),
  whose allocation and events are published to the ledger exactly as the ``allocations``
  asset publishes them.

The **last bars** (``gateway_bars``, 5 by default, the Dagster session included) of one reference
strategy (``gateway_strategy``) go through the strategy gateway instead of the inbox: the demo
serves the gateway on its ledger, issues the strategy's token with ``allocator strategy add``,
and the strategy runs as a real bot in a separate process (:mod:`demo.bot`, on
:mod:`allocator.client`), reading its budget and posting its intents over HTTP and reading its
fills back (:mod:`demo.door`). The intents are the same the backfill computes (checked bar by
bar), so the figures do not change.

This backfill mode does not start one Dagster run per bar (that would cost about three seconds
per bar); the **last session** goes through Dagster itself: ``rebalance_job`` (the rule set and
its blocking checks, over the whole stored history), ``bar_job`` (the last bar, from the
inbox to P&L) and the ``dashboard`` asset, on the persistent ``DAGSTER_HOME`` — so that
``dagster dev`` shows that state with its lineage.

The demo uses the **default configuration** (SPEC's values): on 2006-2010 the rules fire on
real prices with no tuning — the correlation rule benches the trend sleeve against the
low-volatility sleeve in 2007 and re-admits it in 2008, the momentum sleeve is halved in
January 2008 and halted in November 2008 (−28% month to date), then released in April 2009 —
and the rules warm up over the ``warmup`` sessions before the first bar (strategies keep a
paper track record before they trade). The instrument table (:func:`demo_instruments`) sends
consumer-staples, health-care and energy names to Interactive Brokers (per-share commissions,
$1 minimum per order) and the rest to Alpaca (commission-free), so netting saves real fees and
the book has two venues.
"""

from __future__ import annotations

import csv
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from allocator.arrays import FloatArray
from allocator.config import AllocatorConfig
from allocator.dashboard import LedgerHistory, book_series, summary_frames
from allocator.execution.bar import run_bar
from allocator.execution.inbox import ReturnRow
from allocator.execution.instruments import Instrument, InstrumentTable
from allocator.execution.orders import AssetClass, Venue
from allocator.execution.prices import bar_prices, price_file, write_prices
from allocator.execution.records import Bar, Intent
from allocator.execution.routing import venue_of
from allocator.replay import AllocatorEngine, SessionDecision
from allocator.states import BreakerState
from demo.door import DoorReport, GatewayDoor
from demo.marketdata import MarketHistory, load_sp500
from demo.strategies import (
    REFERENCE_STRATEGIES,
    SignalInputs,
    held_weights,
    own_returns,
    share_intents,
)

__all__ = [
    "DEFAULT_END",
    "DEFAULT_START",
    "DemoPlan",
    "DemoResult",
    "demo_instruments",
    "mechanics",
    "run_demo",
    "summary_text",
]

DEFAULT_START = "2006-01-03"
DEFAULT_END = "2010-12-31"
DEFAULT_WARMUP = 250
DEFAULT_GATEWAY_BARS = 5
DEFAULT_GATEWAY_STRATEGY = "flow"
IBKR_SYMBOLS = frozenset({"CVX", "JNJ", "KO", "LLY", "MRK", "PEP", "PFE", "PG", "WMT", "XOM"})


def demo_instruments(symbols: Sequence[str]) -> InstrumentTable:
    """The bundle's stocks: whole shares, a $0.001 tick (the data's precision), $1 minimum
    notional; staples, health care and energy at Interactive Brokers, the rest at Alpaca."""
    return InstrumentTable(
        Instrument(
            symbol=s,
            asset_class=AssetClass.EQUITY,
            lot_size=Decimal(1),
            tick_size=Decimal("0.001"),
            min_notional=Decimal(1),
            venue=Venue.IBKR if s in IBKR_SYMBOLS else Venue.ALPACA,
        )
        for s in symbols
    )


def _write_instruments(path: Path, table: InstrumentTable) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["symbol", "asset_class", "lot_size", "tick_size", "min_notional", "venue"])
        for s, i in table.items():
            w.writerow(
                [s, i.asset_class.value, i.lot_size, i.tick_size, i.min_notional, venue_of(i)]
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoPlan:
    """A demo run: bars from ``start`` to ``end`` (ISO dates, sessions of the bundle), the rules
    warmed up over ``warmup`` sessions before; files under ``out_dir`` (wiped first)."""

    out_dir: Path
    start: str = DEFAULT_START
    end: str = DEFAULT_END
    warmup: int = DEFAULT_WARMUP
    config: AllocatorConfig = field(default_factory=AllocatorConfig)
    config_path: str = ""
    gateway_bars: int = DEFAULT_GATEWAY_BARS  # the last bars through the gateway (0: none)
    gateway_strategy: str = DEFAULT_GATEWAY_STRATEGY


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoResult:
    """What the demo did: the ledger's history, the dashboard path and timings (seconds), and
    what went through the gateway (``None``: nothing)."""

    history: LedgerHistory
    dashboard: Path | None
    ledger_url: str
    timings: Mapping[str, float]
    dagster_runs: tuple[str, ...]
    gateway: DoorReport | None = None


@dataclass(frozen=True, slots=True)
class _Book:
    """The strategies' precomputed decisions over the bundle: held weights per strategy and
    their own daily returns (``(sessions, strategies)``)."""

    names: tuple[str, ...]
    held: tuple[FloatArray, ...]
    returns: FloatArray


def _strategy_book(market: MarketHistory) -> _Book:
    data = SignalInputs(market.sessions, market.symbols, market.closes, market.index)
    held = tuple(held_weights(s.weights(data)) for s in REFERENCE_STRATEGIES)
    returns = np.column_stack([own_returns(h, market.closes) for h in held])
    return _Book(tuple(s.name for s in REFERENCE_STRATEGIES), held, returns)


def _day(market: MarketHistory, t: int) -> str:
    return str(market.sessions[t])[:10]


def _publish(store: Any, decision: SessionDecision, names: Sequence[str]) -> None:
    """Write one session's allocation and events to the ledger as the ``allocations`` asset
    does (capital as the float's shortest decimal text)."""
    from resources.ledger import AllocationRow, EventRow

    day = str(decision.date)[:10]
    store.write_allocations(
        [
            AllocationRow(
                date=day,
                strategy=name,
                capital=Decimal(repr(float(decision.capital[j]))),
                final_weight=float(decision.final_weight[j]),
                breaker_state=BreakerState(int(decision.breaker_state[j])).label,
                benched=bool(decision.benched[j]),
            )
            for j, name in enumerate(names)
        ]
    )
    if decision.events:
        store.write_events(
            [
                EventRow(date=day, kind=e.kind, strategy=e.strategy or None, detail=e.detail)
                for e in decision.events
            ]
        )


def _intents(
    store: Any, book: _Book, market: MarketHistory, t: int, prices: Sequence[Decimal], bar: Bar
) -> list[Intent]:
    """Every strategy's intents for bar ``t``, sized to the capital published before it."""
    budgets = store.budgets(bar.key, Decimal(1))
    positions = store.positions()
    out: list[Intent] = []
    for j, name in enumerate(book.names):
        budget = budgets.get(name)
        capital = budget.capital if budget is not None else Decimal(0)
        held = {m: q for (s, m), q in positions.items() if s == name}
        out += share_intents(
            strategy=name,
            bar=bar,
            weights=book.held[j][t],
            prices=prices,
            symbols=market.symbols,
            capital=capital,
            positions=held,
            band=REFERENCE_STRATEGIES[j].band,
        )
    return out


def _submit(
    store: Any,
    door: GatewayDoor | None,
    book: _Book,
    market: MarketHistory,
    t: int,
    prices: Sequence[Decimal],
    bar: Bar,
) -> None:
    """Bar ``t``'s intents into the inbox; the door's strategy's through the gateway when a
    ``door`` is given, checked to be the very intents the backfill computes for it."""
    intents = _intents(store, book, market, t, prices, bar)
    if door is not None:
        mine = sorted((i for i in intents if i.strategy == door.strategy), key=_id)
        accepted = door.post(bar)
        stored = sorted(
            (i for i in store.intents_for_bar(bar) if i.strategy == door.strategy), key=_id
        )
        if stored != mine or sorted(accepted) != [i.intent_id for i in mine]:
            raise RuntimeError(
                f"bar {bar}: {door.strategy}'s bot submitted {sorted(accepted)} through the "
                f"gateway, the backfill computes {[i.intent_id for i in mine]}"
            )
        intents = [i for i in intents if i.strategy != door.strategy]
    store.submit_intents(intents, source="demo")


def _id(intent: Intent) -> str:
    return intent.intent_id


def _returns_rows(book: _Book, market: MarketHistory, t: int) -> list[ReturnRow]:
    day = _day(market, t)
    return [
        ReturnRow(date=day, strategy=n, value=float(book.returns[t, j]))
        for j, n in enumerate(book.names)
    ]


def _write_prices(
    folder: Path, bar: str, symbols: Sequence[str], prices: Sequence[Decimal]
) -> None:
    write_prices(price_file(folder, bar), dict(zip(symbols, prices, strict=True)))


def run_demo(
    plan: DemoPlan, *, instance: Any = None, progress: Any = None, dagster: bool = True
) -> DemoResult:
    """Run the demo (see the module doc). ``instance`` is the Dagster instance for the final
    session (default: ``DagsterInstance.get()``, i.e. ``$DAGSTER_HOME``); ``dagster=False``
    runs the last session through the same core instead (tests of the core alone)."""
    from resources.brokers.paper.client import PaperBrokerConfig
    from resources.brokers.registry import pipeline_venues
    from resources.ledger import Ledger

    clock = time.perf_counter()
    timings: dict[str, float] = {}
    say = progress or (lambda _msg: None)
    market = load_sp500()
    lo, hi = market.position(plan.start), market.position(plan.end)
    if market.sessions[hi] > np.datetime64(plan.end, "D"):
        hi -= 1
    t0 = lo - plan.warmup
    if t0 < 0 or hi <= lo:
        raise ValueError(
            f"demo window {plan.start}..{plan.end} with warm-up {plan.warmup} is empty"
        )
    book = _strategy_book(market)
    timings["strategies"] = time.perf_counter() - clock

    out = plan.out_dir
    if out.exists():
        shutil.rmtree(out)
    prices_dir = out / "prices"
    prices_dir.mkdir(parents=True)
    instruments = demo_instruments(market.symbols)
    _write_instruments(out / "instruments.csv", instruments)
    ledger_url = f"sqlite:///{(out / 'ledger.sqlite').resolve()}"
    store = Ledger(ledger_url)
    cfg = plan.config
    engine = AllocatorEngine(book.names, cfg)
    paper = PaperBrokerConfig()
    brokers = pipeline_venues(instruments, ledger=store, paper=paper)
    fee_model = paper.fees.fee
    store.register_strategies(book.names)
    last = hi if not dagster else hi - 1
    door_from = hi - plan.gateway_bars + 1 if plan.gateway_bars > 0 else hi + 1
    if plan.gateway_bars > 0 and plan.gateway_strategy not in book.names:
        raise ValueError(
            f"gateway_strategy {plan.gateway_strategy!r} is not one of {', '.join(book.names)}"
        )
    door: GatewayDoor | None = None
    report: DoorReport | None = None
    try:
        if door_from <= hi:
            door = GatewayDoor(
                strategy=plan.gateway_strategy,
                ledger_url=ledger_url,
                instruments=out / "instruments.csv",
                config_path=plan.config_path,
            )
            door.start()  # the token and the bot start while the backfill runs
        for t in range(t0, last + 1):
            day = _day(market, t)
            if t >= lo:
                bar = Bar(day)
                prices = [market.price_text(t, m) for m in range(len(market.symbols))]
                _write_prices(prices_dir, day, market.symbols, prices)
                _submit(store, door if t >= door_from else None, book, market, t, prices, bar)
                run_bar(
                    ledger=store,
                    brokers=brokers,
                    bar=bar,
                    prices=dict(zip(market.symbols, prices, strict=True)),
                    budgets=store.budgets(bar.key, cfg.execution.max_leverage),
                    instruments=instruments,
                    routing=cfg.routing,
                    total_capital=cfg.allocation.total_capital,
                    account=cfg.execution.account,
                    cash_quantum=cfg.execution.cash_quantum,
                    fee_model=fee_model,
                    lookup_delay_s=0.0,
                    risk=cfg.risk,
                )
            store.submit_returns(_returns_rows(book, market, t), source="demo")
            _publish(store, engine.step(market.sessions[t], book.returns[t]), book.names)
            if t >= lo and (t - lo) % 250 == 0:
                say(f"  bar {day} ({t - lo + 1}/{hi - lo + 1})")
        timings["backfill"] = time.perf_counter() - clock - timings["strategies"]
        runs: tuple[str, ...] = ()
        dashboard: Path | None = None
        if dagster:
            day = _day(market, hi)
            prices = [market.price_text(hi, m) for m in range(len(market.symbols))]
            _write_prices(prices_dir, day, market.symbols, prices)
            bar = Bar(day)
            _submit(store, door if hi >= door_from else None, book, market, hi, prices, bar)
            store.submit_returns(_returns_rows(book, market, hi), source="demo")
            # The engine closes the last session too: Dagster's replay must agree with it.
            expected = engine.step(market.sessions[hi], book.returns[hi])
            started = time.perf_counter()
            runs, dashboard = _through_dagster(plan, out, ledger_url, day, instance, say)
            timings["dagster"] = time.perf_counter() - started
            _check_same_allocation(store, expected, book.names)
        if door is not None:
            report = door.finish(before_first=_day(market, door_from - 1))
        from assets.dashboard import ledger_history

        # The dashboard marks each bar at the prices the bar ran with: the files written above.
        history = ledger_history(store, lambda key: bar_prices(prices_dir, key), instruments, cfg)
    finally:
        if door is not None:
            door.close()
        store.close()
    timings["total"] = time.perf_counter() - clock
    return DemoResult(
        history=history,
        dashboard=dashboard,
        ledger_url=ledger_url,
        timings=timings,
        dagster_runs=runs,
        gateway=report,
    )


def _check_same_allocation(store: Any, expected: SessionDecision, names: Sequence[str]) -> None:
    """Dagster's rule set (a replay of the stored history) must publish what the engine that
    drove the backfill decided for the same session: one engine, no second copy."""
    day = str(expected.date)[:10]
    published = {a.strategy: a for a in store.allocations(day)}
    for j, name in enumerate(names):
        got = published.get(name)
        want = float(expected.capital[j])
        if got is None or abs(float(got.capital) - want) > 1e-6:
            raise RuntimeError(
                f"{day} {name}: Dagster published {got and got.capital}, the engine decided {want}"
            )


def _through_dagster(
    plan: DemoPlan, out: Path, ledger_url: str, day: str, instance: Any, say: Any
) -> tuple[tuple[str, ...], Path]:
    """The last session through the code location: ``rebalance_job``, ``bar_job``, then the
    ``dashboard`` asset unless ``bar_job`` already materialised it."""
    import dagster as dg

    from allocator.settings import load_settings
    from assets.dashboard import dashboard as dashboard_asset
    from assets.tags import BAR_LANE, BAR_TAG, SESSION_TAG
    from pipelines.definitions import build_definitions
    from resources.dagster_resources import default_resources

    # The demo's own world, through the same settings function as the code location.
    settings = load_settings(
        config=plan.config_path,
        env={},
        ledger_url=ledger_url,
        prices=(out / "prices").resolve(),
        data_dir=(out / "dagster").resolve(),
        instruments=(out / "instruments.csv").resolve(),
    )
    resources = default_resources(settings=settings)
    defs = build_definitions(resources)
    inst = instance if instance is not None else dg.DagsterInstance.get()
    path = (out / "dashboard.html").resolve()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    run_config = {"ops": {"dashboard": {"config": {"path": str(path)}}}, **quiet}
    runs: list[str] = []
    done: set[str] = set()
    for job_name, tags in (
        ("rebalance_job", {SESSION_TAG: day}),
        ("bar_job", {BAR_TAG: day, **BAR_LANE}),
    ):
        job = defs.resolve_job_def(job_name)
        keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
        result = job.execute_in_process(
            instance=inst,
            tags=tags,
            run_config=run_config if "dashboard" in keys else quiet,
        )
        runs.append(result.run_id)
        done |= keys
        say(f"  dagster {job_name} for {day}: run {result.run_id[:8]} succeeded")
    if "dashboard" not in done:
        result = dg.materialize(
            [dashboard_asset],
            instance=inst,
            resources=resources,
            run_config=run_config,
            tags={BAR_TAG: day},
        )
        runs.append(result.run_id)
        say(f"  dagster dashboard: run {result.run_id[:8]} succeeded")
    return tuple(runs), path


def mechanics(history: LedgerHistory, start: str) -> dict[str, int]:
    """How often each mechanic fired from ``start`` on: benches, re-admissions, breaker moves
    to half and to halted, releases from halted, bars with positive netting savings, intents
    cut or refused (all reasons)."""
    ev = history.events[history.events["date"] >= start]
    breaker = ev[ev["kind"] == "breaker"]["detail"]
    return {
        "bench": int((ev["kind"] == "bench").sum()),
        "readmit": int((ev["kind"] == "readmit").sum()),
        "half": int(breaker.str.endswith(f"->{BreakerState.HALF.label}").sum()),
        "halt": int(breaker.str.endswith(f"->{BreakerState.HALTED.label}").sum()),
        "halt_released": int(breaker.str.startswith(f"{BreakerState.HALTED.label}->").sum()),
        "netting_bars_with_savings": sum(1 for w, f in history.savings.values() if w > f),
        "intents_cut_or_refused": sum(history.refusals.values()),
    }


def summary_text(result: DemoResult, start: str) -> str:
    """The summary the demo prints: allocations, events, attributed P&L, book vs benchmarks."""
    h = result.history
    series = book_series(h)
    pnl, perf = summary_frames(h, series)
    lines = [f"Allocator demo: {len(h.bars)} bars, {h.bars[0]} to {h.bars[-1]} (paper broker)"]
    last = h.allocations[h.allocations["date"] == h.allocations["date"].max()]
    lines.append(f"\nFinal allocation (published {last['date'].iloc[0]}, from the next session):")
    lines.append(f"  {'strategy':<10}{'state':>8}{'benched':>9}{'weight':>9}{'capital':>13}")
    for r in last.itertuples(index=False):
        lines.append(
            f"  {r.strategy:<10}{r.breaker_state:>8}{'yes' if r.benched else 'no':>9}"
            f"{r.final_weight:>9.2%}{r.capital:>13,.2f}"
        )
    ev = h.events[(h.events["date"] >= start) & (h.events["kind"] != "rebalance")]
    lines.append(f"\nEvents from {start} (benches, re-admissions, breaker changes): {len(ev)}")
    for date, kind, name, text in zip(
        ev["date"], ev["kind"], ev["strategy"], ev["detail"], strict=True
    ):
        detail = str(text) if kind == "breaker" else str(text).split(";")[0]
        lines.append(f"  {date} {kind:<8} {name:<9} {detail}")
    m = mechanics(h, start)
    lines.append(
        "\nMechanics: "
        + ", ".join(f"{k} {v}" for k, v in m.items())
        + f"; cuts by reason {dict(sorted(h.refusals.items()))}"
    )
    lines.append(
        f"Netting: fees saved {series.savings_cum[-1]:,.2f}, fees paid {series.fees_cum[-1]:,.2f},"
        f" notional crossed internally {series.crossed_cum[-1]:,.0f}"
    )
    lines.append("\nAttributed P&L (virtual fills marked at each bar's reference prices):")
    for name, value in zip(pnl["strategy"], pnl["attributed_pnl"], strict=True):
        lines.append(f"  {name:<22}{Decimal(str(value)):>14,.2f}")
    lines.append(f"  unexplained (book - sum of strategies): {series.unexplained:f}")
    lines.append("\nBook vs equal weight vs the best single strategy:")
    lines.append(
        f"  {'portfolio':<26}{'final':>12}{'ann.ret':>9}{'vol':>8}{'Sharpe':>8}{'maxDD':>9}"
    )
    for r in perf.itertuples(index=False):
        lines.append(
            f"  {r.portfolio:<26}{r.final_equity:>12,.0f}{r.annual_return:>9.2%}"
            f"{r.volatility:>8.2%}{r.sharpe:>8.2f}{r.max_drawdown:>9.2%}"
        )
    door = result.gateway
    if door is not None:
        lines.append(
            f"\nBars {door.first_bar}..{door.last_bar}: strategy {door.strategy} traded through "
            f"the gateway ({len(door.intents)} intents, {len(door.fills)} fills), as a separate "
            f"process (pid {door.bot_pid}) on allocator.client"
        )
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    lines.append(f"\nTimings: {timing}")
    if result.dagster_runs:
        lines.append(f"Dagster runs: {', '.join(r[:8] for r in result.dagster_runs)}")
    if result.dashboard is not None:
        lines.append(f"Dashboard: {result.dashboard}")
    return "\n".join(lines)
