"""Self-reported returns against the attributed P&L (allocator/returns_check.py), and the
dashboard that shows the result and escapes strategy names."""

from __future__ import annotations

import html
from decimal import Decimal

import pandas as pd
import pytest

from allocator.config import AllocatorConfig
from allocator.dashboard import (
    BrokerFillRow,
    LedgerHistory,
    VirtualFillRow,
    book_series,
    build_dashboard,
    reported_vs_attributed,
)
from allocator.returns_check import return_divergences, traded_sessions

D = Decimal
S = ("2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05")


def test_traded_sessions_are_those_a_position_is_carried_into() -> None:
    fills = [
        ("2024-01-02", "a", "SPY", D(10)),
        ("2024-01-03", "a", "SPY", D(-10)),  # flat after the 3rd
        ("2024-01-04", "b", "QQQ", D(1)),
    ]
    assert traded_sessions(S, fills) == {"a": {"2024-01-03"}, "b": {"2024-01-05"}}


def test_divergence_uses_the_session_pnl_and_the_capital_published_before() -> None:
    pnl = {"a": [D(0), D(10), D(-10), D(-10)]}  # cumulative: days 0, +10, -20, 0
    capital = {"a": {"2024-01-01": 1000.0, "2024-01-03": 2000.0}}  # 2000 used from the 4th
    traded = {"a": set(S)}
    honest = {"a": {"2024-01-02": 0.0, "2024-01-03": 0.01, "2024-01-04": -0.01, "2024-01-05": 0.0}}
    kw = {"sessions": S, "pnl": pnl, "traded": traded, "capital": capital}
    assert return_divergences(**kw, reported=honest, tolerance=1e-12) == []
    smooth = {"a": dict.fromkeys(S, 0.004)}
    found = return_divergences(**kw, reported=smooth, tolerance=0.005)
    assert [(d.session, d.attributed, d.capital) for d in found] == [
        ("2024-01-03", 0.01, 1000.0),
        ("2024-01-04", -0.01, 2000.0),
    ]
    assert found[1].pnl == D(-20)
    assert found[1].difference == pytest.approx(0.014)
    # at exactly the tolerance: not a divergence
    assert return_divergences(**kw, reported=smooth, tolerance=0.014) == [
        d for d in found if d.difference > 0.014
    ]


def test_sessions_not_comparable_are_skipped() -> None:
    pnl = {"a": [D(5), D(10), D(15), D(20)]}
    reported = {"a": {"2024-01-02": 0.9, "2024-01-03": None, "2024-01-04": 0.9, "2024-01-05": 0.9}}
    capital = {"a": {"2024-01-02": 100.0, "2024-01-04": 0.0}}
    traded = {"a": {"2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"}}
    found = return_divergences(
        sessions=S, pnl=pnl, traded=traded, capital=capital, reported=reported, tolerance=0.01
    )
    # 01-02: no capital published before it; 01-03: missing; 01-04: capital 100 (published
    # 01-02) compared; 01-05: capital 0 (benched or halted) skipped
    assert [d.session for d in found] == ["2024-01-04"]
    untraded = return_divergences(
        sessions=S, pnl=pnl, traded={"a": set()}, capital=capital, reported=reported, tolerance=0
    )
    assert untraded == []
    with pytest.raises(ValueError, match="tolerance"):
        return_divergences(
            sessions=S, pnl=pnl, traded=traded, capital=capital, reported=reported, tolerance=-1
        )
    with pytest.raises(ValueError, match="4 P&L values for 3 sessions"):
        return_divergences(
            sessions=S[:3], pnl=pnl, traded=traded, capital=capital, reported=reported, tolerance=0
        )


SCRIPT = "<script>alert(1)</script>"
LINK = '<a href="http://evil.example">x</a>'
BARS = S[:3]
PRICES = {"2024-01-02": D(100), "2024-01-03": D(101), "2024-01-04": D(99)}


def _history() -> LedgerHistory:
    virtual = (
        VirtualFillRow(BARS[0], SCRIPT, "SPY", D(10), D(100), D(-1000), False),
        VirtualFillRow(BARS[0], LINK, "SPY", D(5), D(100), D(-500), False),
    )
    honest = [0.0, 0.01, -0.0198]  # SCRIPT's days: 0, +10, -20 on 1000
    smooth = [0.001, 0.012, 0.012]  # LINK's days are 0, +5, -10 on 1000: it reports otherwise
    returns = pd.DataFrame(
        [
            *(
                {"date": d, "strategy": SCRIPT, "return": r}
                for d, r in zip(BARS, honest, strict=True)
            ),
            *(
                {"date": d, "strategy": LINK, "return": r}
                for d, r in zip(BARS, smooth, strict=True)
            ),
        ]
    )
    allocations = pd.DataFrame(
        [
            {
                "date": "2023-12-29",
                "strategy": name,
                "capital": 1000.0,
                "final_weight": 0.5,
                "breaker_state": "normal",
                "benched": False,
            }
            for name in (SCRIPT, LINK)
        ]
    )
    return LedgerHistory(
        bars=BARS,
        virtual_fills=virtual,
        broker_fills=(BrokerFillRow(BARS[0], "SPY", D(15), D(-1500)),),
        savings={},
        prices={b: {"SPY": p} for b, p in PRICES.items()},
        venues={"SPY": "alpaca"},
        allocations=allocations,
        events=pd.DataFrame(columns=["date", "kind", "strategy", "detail"]),
        returns=returns,
        refusals={},
        total_capital=2000.0,
    )


def test_the_dashboard_lists_divergent_strategies_and_shows_names_as_text() -> None:
    history = _history()
    found = reported_vs_attributed(history, book_series(history), 0.005)
    assert {d.strategy for d in found} == {LINK}
    assert [d.session for d in found] == ["2024-01-03", "2024-01-04"]  # 0.001 vs 0 is within
    page = build_dashboard(history, AllocatorConfig(), title="<b>desk</b>")
    for name in (SCRIPT, LINK, "<b>desk</b>"):
        assert name not in page
    # Plotly draws labels as HTML: the names reach it escaped (a link would otherwise be live)
    assert html.escape(LINK) in page
    assert "\\u003ca href" not in page
    assert "diverge from the attributed P&amp;L" in page
    assert html.escape(LINK) + "</td><td>2 session(s): 2024-01-03" in page
