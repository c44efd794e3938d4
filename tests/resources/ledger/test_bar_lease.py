"""Running a bar is exclusive across runners: the bar's lease (allocator.execution.lease)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from allocator.config import RoutingConfig
from allocator.errors import BarLeasedError
from allocator.execution import DEFAULT_INSTRUMENTS, Intent, parse_bar, run_bar
from allocator.execution.lease import LeaseOwner, lease_is_live
from allocator.execution.orders import AssetClass, BrokerOrder, OrderRequest, Venue
from resources.brokers.paper.client import PaperBroker
from resources.ledger import Ledger, LedgerPaperState

BAR = parse_bar("2024-05-01")  # the bar of bar_script.py
SCRIPT = Path(__file__).with_name("bar_script.py")


class _CountingBroker(PaperBroker):
    """The simulated venue, slow to accept, counting every submission it is asked for."""

    def __init__(self, calls: list[str], delay_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = calls
        self.delay_s = delay_s

    def submit(self, request: OrderRequest) -> BrokerOrder:
        self.calls.append(request.client_order_id)
        time.sleep(self.delay_s)
        return super().submit(request)


def _seed(ledger: Ledger) -> None:
    ledger.register_strategies(["A", "B"])
    ledger.submit_intents(
        [
            Intent(
                intent_id=i,
                strategy=s,
                symbol="SPY",
                asset_class=AssetClass.ETF,
                qty=Decimal(q),
                bar=BAR,
            )
            for i, s, q in (("a1", "A", 100), ("b1", "B", -60))
        ]
    )


def _run(ledger: Ledger, calls: list[str], runner: str, delay_s: float = 0.0, **kw: Any) -> Any:
    state = LedgerPaperState(ledger)
    brokers = {
        v: _CountingBroker(calls, delay_s, venue=v, instruments=DEFAULT_INSTRUMENTS, state=state)
        for v in Venue
    }
    return run_bar(
        ledger=ledger,
        brokers=brokers,
        bar=BAR,
        prices={"SPY": Decimal("500.25")},
        budgets=None,
        instruments=DEFAULT_INSTRUMENTS,
        routing=RoutingConfig(),
        total_capital=Decimal(100_000),
        account="paper",
        cash_quantum=Decimal("0.00000001"),
        lookup_delay_s=0.0,
        runner=runner,
        **kw,
    )


def _venue_orders(ledger: Ledger) -> int:
    state = LedgerPaperState(ledger)
    return sum(len(state.orders(f"paper-{v.value}")) for v in Venue)


def test_two_concurrent_runners_of_one_bar_send_once(ledger_url: str) -> None:
    seed = Ledger(ledger_url)
    _seed(seed)
    calls: list[str] = []
    start = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def runner(name: str) -> None:
        ledger = Ledger(ledger_url)  # each runner its own connections, like a process
        try:
            start.wait()
            outcomes[name] = _run(ledger, calls, name, delay_s=1.0)
        except BarLeasedError as exc:
            outcomes[name] = exc
        finally:
            ledger.close()

    threads = [threading.Thread(target=runner, args=(n,)) for n in ("cli", "dagster:run1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    leased = [o for o in outcomes.values() if isinstance(o, BarLeasedError)]
    settled = [o for o in outcomes.values() if not isinstance(o, BarLeasedError)]
    assert len(leased) == 1, outcomes  # the second runner found the bar's lease held
    assert "is being run by" in str(leased[0])
    assert len(settled) == 1
    assert settled[0].outcome is not None  # type: ignore[attr-defined]
    assert len(calls) == 1  # exactly one runner asked the venue to place the order
    try:
        assert seed.bar_done(BAR)
        status = seed.bar_status(BAR)
        assert status is not None
        assert status.lease_owner is None  # given up at the end
    finally:
        seed.close()


def test_a_runner_killed_with_its_lease_held_is_taken_over_and_the_bar_recovered(
    ledger_url: str,
) -> None:
    # The runner is killed (os._exit, no cleanup) right after the venue acknowledged its order.
    done = subprocess.run(
        [sys.executable, str(SCRIPT), ledger_url, "ack:"], capture_output=True, timeout=120
    )
    assert done.returncode == 9, done.stderr.decode()
    ledger = Ledger(ledger_url)
    try:
        status = ledger.bar_status(BAR)
        assert status is not None
        assert status.lease_owner is not None  # it died holding the lease
        owner = LeaseOwner.parse(status.lease_owner)
        assert owner is not None
        assert owner.alive() is False  # its pid is gone: proven dead, no need to wait
        assert not lease_is_live(status, datetime.now(UTC))
        calls: list[str] = []
        run = _run(ledger, calls, "allocator bar run")
        assert run.outcome is not None
        assert calls == []  # recovered from the journal: the lookup found the order
        assert _venue_orders(ledger) == 1
        assert ledger.bar_done(BAR)
    finally:
        ledger.close()


def test_a_lease_held_elsewhere_blocks_until_it_expires(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    try:
        _seed(ledger)
        ledger.seal_bar(BAR, by="test")
        elsewhere = LeaseOwner(label="dagster:r0", host="another-host", pid=1, started="1")
        now = datetime.now(UTC)
        until = now + timedelta(seconds=1.5)
        assert ledger.claim_bar(BAR, elsewhere.text(), now=now, until=until)
        status = ledger.bar_status(BAR)
        assert status is not None
        assert lease_is_live(status, datetime.now(UTC))  # another host: only expiry tells
        calls: list[str] = []
        with pytest.raises(BarLeasedError, match=r"dagster:r0 \(pid 1 on another-host\)"):
            _run(ledger, calls, "allocator bar run")
        assert calls == []
        assert ledger.orders(BAR) == []  # nothing journaled, nothing sent
        time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.1)
        run = _run(ledger, calls, "allocator bar run")
        assert run.outcome is not None
        assert len(calls) == 1
        assert not ledger.renew_bar_lease(BAR, elsewhere.text(), until=until)  # it is gone
    finally:
        ledger.close()


def test_claims_are_atomic_and_only_the_holder_renews_or_releases(ledger: Ledger) -> None:
    ledger.seal_bar(BAR, by="test")
    now = datetime.now(UTC)
    later = now + timedelta(seconds=30)
    assert ledger.claim_bar(BAR, "a|h|1|", now=now, until=later)
    assert ledger.claim_bar(BAR, "a|h|1|", now=now, until=later)  # the holder again
    assert not ledger.claim_bar(BAR, "b|h|2|", now=now, until=later)
    assert not ledger.renew_bar_lease(BAR, "b|h|2|", until=later)
    assert not ledger.release_bar_lease(BAR, "b|h|2|")
    assert ledger.claim_bar(BAR, "b|h|2|", now=now, until=later, replacing="a|h|1|")
    assert not ledger.release_bar_lease(BAR, "a|h|1|")
    assert ledger.claim_bar(BAR, "c|h|3|", now=later + timedelta(seconds=1), until=later)  # expired
    assert ledger.release_bar_lease(BAR, "c|h|3|")
    with pytest.raises(ValueError, match="is not sealed"):
        ledger.claim_bar(parse_bar("2024-06-01"), "a|h|1|", now=now, until=later)


def test_a_runner_whose_lease_was_taken_over_settles_nothing(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    try:
        _seed(ledger)
        other = LeaseOwner(label="dagster:r9", host="another-host", pid=1, started="1")

        class _Stalled(_CountingBroker):
            def submit(self, request: OrderRequest) -> BrokerOrder:
                # While this runner is at the venue, its lease is taken over (as if it stalled
                # past the expiry): its next heartbeat finds the lease gone.
                status = ledger.bar_status(BAR)
                assert status is not None
                now = datetime.now(UTC)
                assert ledger.claim_bar(
                    BAR,
                    other.text(),
                    now=now,
                    until=now + timedelta(seconds=60),
                    replacing=status.lease_owner,
                )
                order = super().submit(request)
                time.sleep(0.3)  # a heartbeat (every 0.1 s) comes and finds it lost
                return order

        state = LedgerPaperState(ledger)
        calls: list[str] = []
        brokers = {
            v: _Stalled(calls, 0.0, venue=v, instruments=DEFAULT_INSTRUMENTS, state=state)
            for v in Venue
        }
        with pytest.raises(BarLeasedError, match="another runner took it over"):
            run_bar(
                ledger=ledger,
                brokers=brokers,
                bar=BAR,
                prices={"SPY": Decimal("500.25")},
                budgets=None,
                instruments=DEFAULT_INSTRUMENTS,
                routing=RoutingConfig(),
                total_capital=Decimal(100_000),
                account="paper",
                cash_quantum=Decimal("0.00000001"),
                lookup_delay_s=0.0,
                runner="cli",
                lease_s=0.3,
            )
        assert not ledger.bar_done(BAR)  # the new holder settles it, not this runner
        status = ledger.bar_status(BAR)
        assert status is not None
        assert status.lease_owner == other.text()  # and its lease was not given up by us
    finally:
        ledger.close()


def test_bar_run_on_a_bar_another_runner_holds_exits_3(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    ledger = Ledger(ledger_url)
    try:
        _seed(ledger)
        ledger.seal_bar(BAR, by="bar_sensor")
        now = datetime.now(UTC)
        holder = LeaseOwner(label="dagster:r1", host="another-host", pid=1, started="1")
        assert ledger.claim_bar(BAR, holder.text(), now=now, until=now + timedelta(seconds=60))
    finally:
        ledger.close()
    prices = tmp_path / "prices.csv"
    prices.write_text("symbol,price\nSPY,500.25\n", encoding="utf-8")
    assert main(["bar", "run", BAR.key, "--ledger", ledger_url, "--prices", str(prices)]) == 3
    assert "is being run by dagster:r1 (pid 1 on another-host)" in capsys.readouterr().err
    ledger = Ledger(ledger_url)
    try:
        assert ledger.orders(BAR) == []
    finally:
        ledger.close()


def test_abandon_is_refused_while_another_runner_holds_the_bar(
    ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    ledger = Ledger(ledger_url)
    try:
        _seed(ledger)
        ledger.seal_bar(BAR, by="bar_sensor")
        now = datetime.now(UTC)
        holder = LeaseOwner(label="allocator bar run", host="another-host", pid=1, started="1")
        assert ledger.claim_bar(BAR, holder.text(), now=now, until=now + timedelta(seconds=60))
    finally:
        ledger.close()
    argv = ["bar", "abandon", BAR.key, "--reason", "x", "--ledger", ledger_url, "--by", "ops"]
    assert main(argv) == 2  # it may be sending right now: nothing is confirmed free
    assert "is being run by allocator bar run" in capsys.readouterr().err
    ledger = Ledger(ledger_url)
    try:
        assert ledger.release_bar_lease(BAR, holder.text())
        status = ledger.bar_status(BAR)
        assert status is not None
        assert not status.state.is_final
    finally:
        ledger.close()
    assert main(argv) == 0  # no runner, no order anywhere: abandoned
