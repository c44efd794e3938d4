"""Six small reference strategies on the bundled S&P 500 sample (examples of clients).

Each is a plain causal rule over daily closes: row ``t`` of its weights uses closes through
``t`` only. They trade overlapping symbols (every sleeve can hold KO, PEP or the large caps the
trend and flow sleeves buy as a basket), so their intents cross and netting matters.

========== ================================================================================
name       rule
========== ================================================================================
carry      low-volatility "carry-like" sleeve: at each month's first session, long the five
           stocks with the lowest 60-session volatility, inverse-vol weighted
flow       turn-of-month seasonality: long the equal-weight basket from the 28th of each
           month through the next month's second session, flat otherwise
momentum   earnings-drift / momentum sleeve: at each month's first session, long the three
           stocks with the best 12-1 month return, equal weight
news       short-term reversal ("news overreaction"): every five sessions, long the three
           worst 5-session performers and short the three best, dollar neutral
pairs      KO/PEP spread: z-score of log(KO/PEP) over 60 sessions; short the rich leg and
           buy the cheap one beyond ±1.5, flat once the spread is back inside ±0.25
trend      index trend filter: long the equal-weight basket while the S&P 500 index is above
           its 200-session average (1% hysteresis band), flat otherwise
========== ================================================================================
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from allocator.arrays import FloatArray
from demo.strategies.base import ReferenceStrategy, SignalInputs

__all__ = ["REFERENCE_STRATEGIES", "carry", "flow", "momentum", "news", "pairs", "trend"]


def _month_starts(sessions: npt.NDArray[np.datetime64]) -> npt.NDArray[np.bool_]:
    months = sessions.astype("datetime64[M]")
    first = np.ones(len(sessions), dtype=np.bool_)
    first[1:] = months[1:] != months[:-1]
    return first


def _hold_between(
    decide: npt.NDArray[np.bool_], pick: FloatArray, valid: npt.NDArray[np.bool_]
) -> FloatArray:
    """Weights ``pick[t]`` chosen at each ``decide`` session (where ``valid``), held until the
    next one; zero before the first valid decision."""
    out = np.zeros_like(pick)
    current = np.zeros(pick.shape[1])
    for t in range(pick.shape[0]):
        if decide[t] and valid[t]:
            current = pick[t]
        out[t] = current
    return out


def _carry(data: SignalInputs) -> FloatArray:
    rets = pd.DataFrame(data.closes).pct_change()
    vol = rets.rolling(60, min_periods=60).std().to_numpy()
    # A flat window (coarse early prices) has no risk estimate: never the "least volatile".
    vol = np.where(vol > 0, vol, np.inf)
    valid = np.sum(np.isfinite(vol), axis=1) >= 5
    pick = np.zeros_like(data.closes)
    for t in np.flatnonzero(valid):
        lowest = np.argsort(vol[t], kind="stable")[:5]
        inv = 1.0 / vol[t, lowest]
        pick[t, lowest] = inv / inv.sum()
    return _hold_between(_month_starts(data.sessions), pick, valid)


def _flow(data: SignalInputs) -> FloatArray:
    months = data.sessions.astype("datetime64[M]")
    day_of_month = (data.sessions - months.astype("datetime64[D]")).astype(np.int64) + 1
    rank_from_start = np.zeros(len(months), dtype=np.int64)
    for t in range(1, len(months)):
        rank_from_start[t] = rank_from_start[t - 1] + 1 if months[t] == months[t - 1] else 0
    on = (rank_from_start < 2) | (day_of_month >= 28)
    m = data.closes.shape[1]
    return np.where(on[:, None], 1.0 / m, 0.0) * np.ones((1, m))


def _momentum(data: SignalInputs) -> FloatArray:
    c = data.closes
    pick = np.zeros_like(c)
    valid = np.zeros(c.shape[0], dtype=np.bool_)
    for t in range(252, c.shape[0]):
        score = c[t - 21] / c[t - 252] - 1.0
        best = np.argsort(-score, kind="stable")[:2]
        pick[t, best] = 0.5
        valid[t] = True
    return _hold_between(_month_starts(data.sessions), pick, valid)


def _news(data: SignalInputs) -> FloatArray:
    c = data.closes
    pick = np.zeros_like(c)
    valid = np.zeros(c.shape[0], dtype=np.bool_)
    decide = np.zeros(c.shape[0], dtype=np.bool_)
    decide[::5] = True
    for t in range(5, c.shape[0]):
        move = c[t] / c[t - 5] - 1.0
        order = np.argsort(move, kind="stable")
        pick[t, order[:3]] = 1.0 / 6.0
        pick[t, order[-3:]] = -1.0 / 6.0
        valid[t] = True
    return _hold_between(decide, pick, valid)


def _pairs(data: SignalInputs) -> FloatArray:
    ko = data.symbols.index("KO")
    pep = data.symbols.index("PEP")
    spread = pd.Series(np.log(data.closes[:, ko] / data.closes[:, pep]))
    mean = spread.rolling(60, min_periods=60).mean()
    std = spread.rolling(60, min_periods=60).std()
    z = ((spread - mean) / std).to_numpy()
    out = np.zeros_like(data.closes)
    side = 0  # +1: long KO / short PEP; -1: short KO / long PEP
    for t in range(len(z)):
        if np.isfinite(z[t]):
            if side == 0 and z[t] > 1.5:
                side = -1
            elif side == 0 and z[t] < -1.5:
                side = 1
            elif side != 0 and abs(z[t]) < 0.25:
                side = 0
        out[t, ko] = 0.5 * side
        out[t, pep] = -0.5 * side
    return out


def _trend(data: SignalInputs) -> FloatArray:
    level = pd.Series(data.index)
    average = level.rolling(200, min_periods=200).mean().to_numpy()
    on = np.zeros(len(level), dtype=np.bool_)
    state = False
    for t in range(len(level)):
        if np.isfinite(average[t]):
            if data.index[t] > 1.01 * average[t]:
                state = True
            elif data.index[t] < 0.99 * average[t]:
                state = False
        on[t] = state
    m = data.closes.shape[1]
    return np.where(on[:, None], 1.0 / m, 0.0) * np.ones((1, m))


carry = ReferenceStrategy(
    name="carry",
    description="low-volatility sleeve: five least volatile stocks, inverse-vol, monthly",
    signal=_carry,
)
flow = ReferenceStrategy(
    name="flow",
    description="turn-of-month: equal-weight basket from the 28th to the second session",
    signal=_flow,
)
momentum = ReferenceStrategy(
    name="momentum",
    description="12-1 month momentum: best three stocks, equal weight, monthly",
    signal=_momentum,
)
news = ReferenceStrategy(
    name="news",
    description="5-session reversal: long the three worst, short the three best, weekly",
    signal=_news,
)
pairs = ReferenceStrategy(
    name="pairs",
    description="KO/PEP spread: 60-session z-score, in beyond ±1.5, out inside ±0.25",
    signal=_pairs,
)
trend = ReferenceStrategy(
    name="trend",
    description="S&P 500 above its 200-session average (±1% band): equal-weight basket",
    signal=_trend,
)

REFERENCE_STRATEGIES: tuple[ReferenceStrategy, ...] = (carry, flow, momentum, news, pairs, trend)
"""The six reference strategies, in name order (the allocator's order)."""
