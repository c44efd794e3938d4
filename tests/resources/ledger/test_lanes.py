"""The bar lane's ledger methods (docs/decisions/0012-live-bar-path.md), on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from allocator.execution import parse_bar
from allocator.execution.ledger import BarState
from allocator.execution.ledger import Ledger as LedgerProtocol
from resources.ledger import Ledger

B1, B2, B3 = parse_bar("2024-05-01"), parse_bar("2024-05-02"), parse_bar("2024-05-03")


def test_open_bars_in_bar_order_without_final_ones(ledger: Ledger) -> None:
    assert isinstance(ledger, LedgerProtocol)
    assert ledger.open_bars() == []
    ledger.seal_bar(B3, by="t")
    ledger.seal_bar(B1, by="t")
    ledger.seal_bar(B2, by="t")
    assert [s.bar for s in ledger.open_bars()] == [B1.key, B2.key, B3.key]
    ledger.abandon_bar(B1, by="ops", reason="venue confirmed no order")
    assert [s.bar for s in ledger.open_bars()] == [B2.key, B3.key]
    status = ledger.bar_status(B1)
    assert status is not None
    assert status.state is BarState.ABANDONED
    assert (status.abandoned_by, status.abandoned_reason) == ("ops", "venue confirmed no order")


def test_failures_count_and_schedule_a_retry(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="not sealed"):
        ledger.record_bar_failure(B1, "boom", retry_at=datetime.now(UTC))
    ledger.seal_bar(B1, by="bar_sensor")
    at = datetime(2030, 1, 1, tzinfo=UTC)
    first = ledger.record_bar_failure(B1, "run r1: boom", retry_at=at)
    assert (first.state, first.attempts, first.last_error) == (BarState.FAILED, 1, "run r1: boom")
    assert first.next_retry_at == at
    second = ledger.record_bar_failure(B1, "run r2: again", retry_at=at + timedelta(seconds=5))
    assert (second.attempts, second.last_error) == (2, "run r2: again")
    assert [s.bar for s in ledger.open_bars()] == [B1.key]  # a failed bar stays open
    before = datetime.now(UTC)
    due = ledger.retry_bar(B1)
    assert due.attempts == 2
    assert due.state is BarState.FAILED
    assert due.next_retry_at is not None
    assert due.next_retry_at >= before - timedelta(seconds=1)
    assert due.next_retry_at <= datetime.now(UTC)


def test_final_bars_refuse_lane_changes(ledger: Ledger) -> None:
    ledger.seal_bar(B1, by="t")
    ledger.abandon_bar(B1, by="ops", reason="why")
    for call in (
        lambda: ledger.record_bar_failure(B1, "x", retry_at=datetime.now(UTC)),
        lambda: ledger.retry_bar(B1),
        lambda: ledger.abandon_bar(B1, by="ops", reason="again"),
    ):
        with pytest.raises(ValueError, match="abandoned"):
            call()
    ledger.seal_bar(B2, by="t")
    with pytest.raises(ValueError, match="who"):
        ledger.abandon_bar(B2, by="", reason="why")


def test_lane_halt_is_kept_until_cleared_with_who_and_why(ledger: Ledger) -> None:
    assert ledger.lane_halt() is None
    assert ledger.clear_lane_halt(by="ops", reason="nothing") is False
    halt = ledger.halt_lane("bar 2024-05-01 failed 4 times: boom", bar=B1)
    assert halt.bar == B1.key
    assert "boom" in halt.reason
    again = ledger.halt_lane("another reason")  # idempotent while halted
    assert again.reason == halt.reason
    current = ledger.lane_halt()
    assert current is not None
    assert current.bar == B1.key
    assert current.reason == halt.reason
    assert ledger.clear_lane_halt(by="ops", reason="fixed the venue") is True
    assert ledger.lane_halt() is None
    assert ledger.halt_lane("second halt").bar is None
    assert ledger.lane_halt() is not None


def test_lane_survives_reopening_the_store(ledger_url: str) -> None:
    first = Ledger(ledger_url)
    try:
        first.seal_bar(B1, by="t")
        first.record_bar_failure(B1, "boom", retry_at=datetime.now(UTC))
        first.halt_lane("halted on boom", bar=B1)
    finally:
        first.close()
    second = Ledger(ledger_url)
    try:
        [status] = second.open_bars()
        assert (status.bar, status.attempts, status.last_error) == (B1.key, 1, "boom")
        halt = second.lane_halt()
        assert halt is not None
        assert halt.reason == "halted on boom"
        assert halt.halted_at.tzinfo is not None
    finally:
        second.close()
