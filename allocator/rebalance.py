"""The rebalance: the ledger's returns → the rule set (SPEC §1-§6) → the rows to publish.

One function for the rebalance job's assets (``assets/rules.py``) and for
``allocator rebalance``: :func:`returns_frame` turns the stored returns into the long table,
:func:`decide` replays the history (the same engine as ``allocator replay``) and keeps the last
session's decision as frames, and :func:`published_rows` gives the
:class:`AllocationRow`/:class:`EventRow` records the ledger stores. The ledger writes themselves
are the callers' (two calls: ``write_allocations`` then ``write_events``).

Why the row types live here and not in the ledger: they are what the rule set decides (SPEC §6,
§11 ``events.csv``); the ledger (``resources.ledger``) stores and re-exports them. pandas and the
numba kernels are imported on use, so that importing the ledger (every bar) does not load them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from allocator.states import BreakerState

if TYPE_CHECKING:
    import pandas as pd

    from allocator.config import AllocatorConfig
    from allocator.execution.inbox import ReturnRow

__all__ = [
    "AllocationRow",
    "EventRow",
    "RuleSet",
    "decide",
    "published_rows",
    "returns_frame",
]

LEDGER_SOURCE = "ledger:daily_returns"


@dataclass(frozen=True, kw_only=True, slots=True)
class AllocationRow:
    """One published allocation (SPEC §6): the budget of ``strategy`` after ``date``.

    ``capital`` is in the quote currency; the budget applies from the session after ``date``.
    """

    date: str
    strategy: str
    capital: Decimal
    final_weight: float
    breaker_state: str
    benched: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRow:
    """A bench, readmit, breaker or rebalance event (SPEC §11 ``events.csv``)."""

    date: str
    kind: str
    strategy: str | None
    detail: str


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class RuleSet:
    """The decision at the close of ``session``: one frame per rule output, as the assets show.

    Attributes
    ----------
    session : str
        The decision session ``t`` (``YYYY-MM-DD``), the last of the replayed history.
    sessions : int
        How many sessions were replayed.
    vols, weights, flags, breaker, events : pandas.DataFrame
        ``strategy_vols``, ``risk_parity_weights``, ``correlation_flags``,
        ``breaker_multipliers`` and ``rule_events`` (every event of the history).
    last_recompute, last_recompute_kind : str
        The last base-weight recompute's session and kind (empty: none yet).
    sessions_since_recompute : int
        Sessions after the last recompute.
    """

    session: str
    sessions: int
    vols: pd.DataFrame
    weights: pd.DataFrame
    flags: pd.DataFrame
    breaker: pd.DataFrame
    events: pd.DataFrame
    last_recompute: str
    last_recompute_kind: str
    sessions_since_recompute: int

    def allocation_frame(self) -> pd.DataFrame:
        """Return the ``allocations`` asset's table: the published columns of ``breaker``."""
        return allocation_frame(self.breaker)


def returns_frame(rows: Iterable[ReturnRow], through: str | None = None) -> pd.DataFrame:
    """Return the ledger's returns as the long table ``date, strategy, return``.

    A missing return is NaN; only the dates up to ``through`` (inclusive) when it is given.
    """
    import numpy as np
    import pandas as pd

    stored = list(rows)
    frame = pd.DataFrame(
        {
            "date": [r.date for r in stored],
            "strategy": [r.strategy for r in stored],
            "return": [np.nan if r.value is None else r.value for r in stored],
        }
    )
    if through:
        frame = frame[frame["date"] <= through].reset_index(drop=True)
    return frame


def decide(returns: pd.DataFrame, config: AllocatorConfig) -> RuleSet:
    """Replay ``returns`` (the long table) through SPEC §2-§6; keep the last session's decision.

    Raises :class:`~allocator.errors.InputError` for returns that do not validate.
    """
    import numpy as np
    import pandas as pd

    from allocator.data import build_panel, validate_returns
    from allocator.replay import replay  # numba kernels: loaded by the rebalance only

    frame = validate_returns(returns, LEDGER_SOURCE)
    panel = build_panel(frame, config.calendar.name)
    last_day = panel.sessions[-1]
    captured: dict[str, Any] = {}

    def on_pairs(date: np.datetime64, stream: Any, persistence: int) -> None:
        if date == last_day:
            captured.update(
                corr=stream.corr.copy(),
                breach=stream.breach_run.copy(),
                calm=stream.calm_run.copy(),
                persistence=persistence,
            )

    result = replay(panel, config, on_pairs=on_pairs)
    t = len(result.sessions) - 1
    day = str(result.sessions[t])[:10]
    names = list(result.strategies)
    vol_w = config.sizing.vol_window
    window = panel.values[max(0, t - vol_w + 1) : t + 1]
    full_window = (window.shape[0] == vol_w) & ~np.isnan(window).any(axis=0)
    # SPEC §2: an all-equal window has vol 0 (not eligible); the vols check must allow it.
    all_equal = full_window & np.all(window == window[-1:], axis=0)

    vols = pd.DataFrame(
        {
            "date": day,
            "strategy": names,
            "vol_60d": result.vol[t],
            "sharpe_90d": result.sharpe[t],
            "mtd_return": result.mtd[t],
            "full_window": full_window,
            "all_equal": all_equal,
        }
    )
    recomputes = [e for e in result.events if e.kind == "rebalance"]
    last_recompute = str(recomputes[-1].date)[:10] if recomputes else ""
    last_kind = recomputes[-1].detail if recomputes else ""
    vol_now = result.vol[t]
    eligible = ~result.benched[t] & np.isfinite(vol_now) & (vol_now > 0)
    weights = pd.DataFrame(
        {
            "date": day,
            "strategy": names,
            "benched": result.benched[t],
            "eligible": eligible,
            "vol_60d": vol_now,
            "base_weight": result.base_weight[t],
            "recomputed_today": last_recompute == day,
        }
    )
    n = len(names)
    a_idx, b_idx = np.triu_indices(n, k=1)
    rows = []
    if captured:
        for p, (i, j) in enumerate(zip(a_idx.tolist(), b_idx.tolist(), strict=True)):
            item = (
                float(captured["corr"][p]),
                int(captured["breach"][p]),
                int(captured["calm"][p]),
                bool(captured["breach"][p] >= captured["persistence"]),
            )
            rows.append((names[i], names[j], *item))
            rows.append((names[j], names[i], *item))  # both orders: the matrix is checkable
    flags = pd.DataFrame(
        rows, columns=["strategy_a", "strategy_b", "corr_90d", "breach_run", "calm_run", "flagged"]
    )
    flags.insert(0, "date", day)
    states = [BreakerState(int(s)).label for s in result.breaker_state[t]]
    breaker = pd.DataFrame(
        {
            "date": day,
            "strategy": names,
            "mtd_return": result.mtd[t],
            "breaker_state": states,
            "multiplier": result.multiplier[t],
            "benched": result.benched[t],
            "base_weight": result.base_weight[t],
            "final_weight": result.final_weight[t],
            "capital": result.capital[t],
        }
    )
    events = pd.DataFrame(
        {
            "date": [str(e.date)[:10] for e in result.events],
            "kind": [e.kind for e in result.events],
            "strategy": [e.strategy or "" for e in result.events],
            "detail": [e.detail for e in result.events],
        },
        columns=["date", "kind", "strategy", "detail"],
    )
    sessions_since = (
        int(np.sum(result.sessions > np.datetime64(last_recompute))) if recomputes else 0
    )
    return RuleSet(
        session=day,
        sessions=len(result.sessions),
        vols=vols,
        weights=weights,
        flags=flags,
        breaker=breaker,
        events=events,
        last_recompute=last_recompute,
        last_recompute_kind=last_kind,
        sessions_since_recompute=sessions_since,
    )


def allocation_frame(breaker: pd.DataFrame) -> pd.DataFrame:
    """Return the published columns of a ``breaker_multipliers`` table (``allocations``)."""
    return breaker[
        ["date", "strategy", "capital", "final_weight", "breaker_state", "benched"]
    ].copy()


def published_rows(
    breaker: pd.DataFrame, events: pd.DataFrame
) -> tuple[list[AllocationRow], list[EventRow]]:
    """Return the ledger rows of a decision: one allocation per strategy, every rule event."""
    frame = allocation_frame(breaker)
    allocations = [
        AllocationRow(
            date=str(r.date),
            strategy=str(r.strategy),
            capital=Decimal(repr(float(r.capital))),
            final_weight=float(r.final_weight),
            breaker_state=str(r.breaker_state),
            benched=bool(r.benched),
        )
        for r in _records(frame)
    ]
    rule_events = [
        EventRow(
            date=str(e.date),
            kind=str(e.kind),
            strategy=str(e.strategy) if e.strategy else None,
            detail=str(e.detail),
        )
        for e in _records(events)
    ]
    return allocations, rule_events


def _records(frame: pd.DataFrame) -> list[Any]:
    return list(frame.itertuples(index=False))
