"""Sealing a bar and its frozen plan (docs/decisions/0012-live-bar-path.md), on both stores.

The race test is the proof that the seal and the inbox serialise on the bar: submitters keep
adding intents while another thread seals the bar and reads its inbox at once; afterwards the
bar's inbox is exactly what the sealer read, and every other intent has a ``late`` refusal.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from allocator.config import RoutingConfig
from allocator.errors import PlanMismatchError
from allocator.execution import DEFAULT_INSTRUMENTS, Intent, parse_bar
from allocator.execution.bar import BarPlan, load_or_freeze_plan
from allocator.execution.ledger import BarState
from allocator.execution.orders import AssetClass
from allocator.execution.reasons import Reason
from resources.ledger import Ledger, sealing
from resources.ledger import inbox as inbox_module
from resources.ledger import schema as t

D = Decimal

BAR = parse_bar("2024-05-01")


def _intent(intent_id: str, qty: int, strategy: str = "A", symbol: str = "SPY") -> Intent:
    return Intent(
        intent_id=intent_id,
        strategy=strategy,
        symbol=symbol,
        asset_class=AssetClass.ETF,
        qty=D(qty),
        bar=BAR,
    )


def _plan(ledger: Ledger, prices: dict[str, D]) -> BarPlan:
    return load_or_freeze_plan(
        ledger,
        BAR,
        prices=prices,
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=D(100_000),
        account="paper",
    )


def test_seal_is_idempotent_and_closes_the_inbox(ledger: Ledger) -> None:
    ledger.register_strategies(["A", "B"])
    assert ledger.bar_status(BAR) is None
    assert ledger.submit_intents([_intent("a1", 10)]).accepted == 1
    first = ledger.seal_bar(BAR, by="test")
    assert first.state is BarState.SEALED
    assert first.sealed_by == "test"
    assert ledger.seal_bar(BAR, by="someone else") == first
    report = ledger.submit_intents(
        [_intent("a1", 10), _intent("b1", -5, "B"), _intent("b2", 5, "B")], source="late.csv"
    )
    assert (report.accepted, report.unchanged) == (0, 1)
    assert [(r.row, r.key, r.reason) for r in report.refused] == [
        (2, "b1", Reason.LATE),
        (3, "b2", Reason.LATE),
    ]
    # A resubmission of a refused intent is refused again, stored once.
    assert len(ledger.submit_intents([_intent("b1", -5, "B")]).refused) == 1
    stored = ledger.refusals(BAR)
    assert [(r.key, r.reason, r.source) for r in stored] == [
        ("b1", Reason.LATE, "late.csv"),
        ("b2", Reason.LATE, "late.csv"),
    ]
    assert [i.intent_id for i in ledger.intents_for_bar(BAR)] == ["a1"]
    # Another bar is not affected.
    other = Intent(
        intent_id="n1",
        strategy="A",
        symbol="SPY",
        asset_class=AssetClass.ETF,
        qty=D(1),
        bar=parse_bar("2024-05-02"),
    )
    assert ledger.submit_intents([other]).accepted == 1


def test_a_late_intent_for_a_bar_recorded_without_a_seal_is_refused(ledger: Ledger) -> None:
    ledger.register_strategies(["A"])
    with ledger.engine.begin() as conn:  # a bar recorded before the lifecycle existed
        conn.execute(sa.insert(t.bars).values(bar=BAR.key, recorded_at=sa.func.now()))
    report = ledger.submit_intents([_intent("a9", 3)])
    assert [r.reason for r in report.refused] == [Reason.LATE]
    assert [r.key for r in ledger.refusals()] == ["a9"]


def test_freeze_plan_first_writer_wins(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="not sealed"):
        ledger.freeze_plan(BAR, "{}", "d1")
    ledger.seal_bar(BAR, by="test")
    assert ledger.freeze_plan(BAR, "first", "d1") == ("first", "d1")
    assert ledger.freeze_plan(BAR, "second", "d2") == ("first", "d1")
    assert ledger.frozen_plan(BAR) == ("first", "d1")
    status = ledger.bar_status(BAR)
    assert status is not None
    assert status.state is BarState.PLANNED


def test_the_frozen_plan_ignores_the_live_inbox_prices_and_positions(ledger: Ledger) -> None:
    ledger.register_strategies(["A", "B"])
    ledger.submit_intents([_intent("a1", 100), _intent("b1", -60, "B")])
    plan = _plan(ledger, {"SPY": D("500.25")})
    assert [(o.symbol, o.side.value, o.qty) for o in plan.orders] == [("SPY", "buy", D(40))]
    ledger.submit_intents([_intent("late", -100, "B")])  # refused late
    again = _plan(ledger, {"SPY": D(1)})  # other live prices: ignored
    assert again.orders == plan.orders
    assert again.book.price == plan.book.price


def test_a_rebuilt_plan_that_differs_from_the_frozen_one_is_refused(ledger: Ledger) -> None:
    ledger.register_strategies(["A"])
    ledger.submit_intents([_intent("a1", 100)])
    _plan(ledger, {"SPY": D("500.25")})
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(t.bar_lifecycle)
            .where(t.bar_lifecycle.c.bar == BAR.key)
            .values(plan_digest="0" * 64)
        )
    with pytest.raises(PlanMismatchError, match="other orders"):
        _plan(ledger, {"SPY": D("500.25")})


def test_seal_and_submit_race_nothing_slips_in(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.register_strategies(["A"])
    # Widen the race: each submission pauses between its "is the bar sealed?" check and its
    # insert. Only the serialisation on the bar keeps a seal out of that window.
    checked = sealing.closed_bars

    def slow_check(conn: object, bars: object) -> object:
        found = checked(conn, bars)  # type: ignore[arg-type]
        time.sleep(0.005)
        return found

    monkeypatch.setattr(inbox_module, "closed_bars", slow_check)
    accepted: list[str] = []
    late: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()
    snapshot: list[str] = []
    submitted: list[str] = []
    errors: list[BaseException] = []

    def submitter(k: int) -> None:
        try:
            mine_late = 0
            for j in range(2000):  # until this submitter has seen the seal a few times
                intent_id = f"t{k}-{j:04d}"
                report = ledger.submit_intents([_intent(intent_id, 1 + j)])
                with lock:
                    submitted.append(intent_id)
                    if report.accepted:
                        accepted.append(intent_id)
                    else:
                        assert [r.reason for r in report.refused] == [Reason.LATE]
                        late.append(intent_id)
                        mine_late += 1
                    if len(accepted) >= 15:
                        enough.set()
                if mine_late >= 3:
                    break
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sealer() -> None:
        try:
            enough.wait(timeout=60)
            ledger.seal_bar(BAR, by="race")
            snapshot.extend(i.intent_id for i in ledger.intents_for_bar(BAR))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(3)]
    threads.append(threading.Thread(target=sealer))
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    final = [i.intent_id for i in ledger.intents_for_bar(BAR)]
    assert final == snapshot  # nothing entered the inbox after the seal
    assert sorted(accepted) == sorted(final)
    assert late, "the race never happened: no submission came after the seal"
    assert sorted(r.key for r in ledger.refusals(BAR)) == sorted(late)
    assert len(accepted) + len(late) == len(submitted)
    assert len(late) >= 9  # every submitter saw the seal
