"""The one refusal vocabulary: stored names, meanings, the kernels' codes, the inbox's rows."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from allocator.execution import DEFAULT_INSTRUMENTS, Reason, gate
from allocator.execution.inbox import RowRefusal, check_intents
from allocator.execution.reasons import BY_CODE, PASSED, SPEC7_REASONS

from .helpers import BAR, budget, intent, plan

# The names the ledger stores and the command line prints (SPEC §7 plus the inbox's and the
# ledger's): written out here, never derived from the enum under test.
STORED = {
    "benched",
    "halted",
    "budget",
    "no_price",
    "unknown_symbol",
    "routing",
    "min_notional",
    "invalid",
    "late",
    # the risk stage (docs/spec-12-risk.md)
    "reducing",
    "risk_notional",
    "risk_qty",
    "risk_position",
    "risk_exposure",
    "risk_price",
    "risk_rate",
    "unknown_strategy",
    "unknown_asset_class",
    "stale_bar",
    "duplicate",
    "conflict",
    "restated",
    # the strategy gateway's returns (docs/decisions/0015-strategy-gateway.md)
    "settled",
    "backdated",
}


def test_every_reason_keeps_its_stored_name_and_has_a_one_line_meaning() -> None:
    assert {r.value for r in Reason} == STORED
    for reason in Reason:
        assert reason == reason.value  # a StrEnum: equal to the string the ledger stored
        assert Reason(reason.value) is reason
        assert f"{reason}" == reason.value
        assert reason.meaning
        assert "\n" not in reason.meaning


def test_spec7_reasons_are_the_intent_outcomes() -> None:
    assert {r.value for r in SPEC7_REASONS} == {
        "benched",
        "halted",
        "budget",
        "no_price",
        "unknown_symbol",
        "routing",
        "min_notional",
        "invalid",
        "late",
        "reducing",
        "risk_notional",
        "risk_qty",
        "risk_position",
        "risk_exposure",
        "risk_price",
        "risk_rate",
    }


def test_kernel_codes_round_trip_and_zero_means_passed() -> None:
    assert BY_CODE[PASSED] is None
    assert Reason.from_code(PASSED) is None
    coded = [r for r in BY_CODE if r is not None]
    assert len(set(coded)) == len(coded)
    for reason in coded:
        assert Reason.from_code(reason.code) is reason
        assert 0 < reason.code < 128  # fits the kernels' int8 arrays
    for reason in set(Reason) - set(coded):
        with pytest.raises(ValueError, match="has no kernel code"):
            _ = reason.code


def test_gating_codes_decode_to_their_reasons() -> None:
    # One strategy with 1,000 of capital: 10 SPY at 100 fit, the next 5 do not (budget); a
    # benched one and a halted one take no entries.
    p = plan(
        [
            intent("a1", "A", "SPY", 10),
            intent("a2", "A", "SPY", 5),
            intent("b1", "B", "SPY", 1),
            intent("c1", "C", "SPY", 1),
        ],
        {"SPY": "100"},
        budgets={
            "A": budget(1000),
            "B": budget(1000, state="benched"),
            "C": budget(1000, state="halted"),
        },
    )
    got = {g.intent_id: g.reason for g in p.gated()}
    assert got == {"a1": None, "a2": Reason.BUDGET, "b1": Reason.BENCHED, "c1": Reason.HALTED}
    result = gate(p.book, None)  # no budget limit: everything passes whole
    assert result.reason.dtype == np.int8
    assert [Reason.from_code(int(c)) for c in result.reason.tolist()] == [None] * 4


def test_inbox_refusals_carry_a_reason_and_a_name_given_as_text_is_converted() -> None:
    rows = [
        (1, {"intent_id": "x1", "strategy": "A", "symbol": "SPY", "asset_class": "etf",
             "qty": "0", "bar": BAR.key}),
        (2, {"intent_id": "x2", "strategy": "A", "symbol": "SPY", "asset_class": "bond",
             "qty": "1", "bar": BAR.key}),
        (3, {"intent_id": "x3", "strategy": "Z", "symbol": "SPY", "asset_class": "etf",
             "qty": "1", "bar": BAR.key}),
    ]  # fmt: skip
    _, refused = check_intents(
        rows, "in.csv", strategies={"A"}, instruments=DEFAULT_INSTRUMENTS, now=None
    )
    assert [r.reason for r in refused] == [
        Reason.INVALID,
        Reason.UNKNOWN_ASSET_CLASS,
        Reason.UNKNOWN_STRATEGY,
    ]
    assert all(isinstance(r.reason, Reason) for r in refused)
    # The ledger writes its reasons by name; the record holds the member all the same.
    stored = RowRefusal(source="ledger", row=1, key="x1", reason="conflict", detail="d")  # type: ignore[arg-type]
    assert stored.reason is Reason.CONFLICT
    assert str(stored) == "ledger: row 1: x1: conflict: d"
    with pytest.raises(ValueError, match="not_a_reason"):
        RowRefusal(source="s", row=1, key="k", reason="not_a_reason", detail="")  # type: ignore[arg-type]


def test_quantities_are_unchanged_by_the_reason_codes() -> None:
    p = plan([intent("a1", "A", "SPY", 3)], {"SPY": "100"}, budgets={"A": budget(200)})
    (g,) = p.gated()
    assert (g.requested_qty, g.accepted_qty, g.reason) == (Decimal(3), Decimal(2), Reason.BUDGET)
