"""The baseline of ``replay_vs_naive``: a seed-article-style allocator.

On every session it recomputes the pandas rolling statistics over the whole history so far
(``rolling(60).std()``, ``rolling(90).mean()/std()``, ``Series.rolling(90).corr()`` per pair)
and applies SPEC §3–§6 with plain Python dicts. It shares no code with ``allocator/`` beyond
the input panel and the config, so agreeing with it is also an independent check of the engine.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from allocator.config import AllocatorConfig
from allocator.data import ReturnsPanel


def _all_equal(values: np.ndarray) -> bool:
    return bool(np.all(values == values[0]))


def naive_replay(panel: ReturnsPanel, config: AllocatorConfig) -> dict[str, np.ndarray]:
    names = list(panel.strategies)
    T, n = panel.values.shape
    frame = pd.DataFrame(panel.values, columns=names)
    vw, sw, cw = config.sizing.vol_window, config.breaker.sharpe_window, config.correlation.window
    thr, persist = config.correlation.threshold, config.correlation.persistence
    ann = math.sqrt(config.sizing.annualization)
    brk = config.breaker
    pairs = list(combinations(names, 2))
    breach = dict.fromkeys(pairs, 0)
    calm = dict.fromkeys(pairs, 0)
    benched = dict.fromkeys(names, False)
    state = dict.fromkeys(names, "normal")
    base = dict.fromkeys(names, 0.0)
    anchor: int | None = None
    first = {s: int(panel.first[j]) for j, s in enumerate(names)}
    out = {k: np.zeros((T, n)) for k in ("base_weight", "final_weight", "capital", "benched")}
    out["breaker_state"] = np.zeros((T, n))
    codes = {"normal": 0, "half": 1, "halted": 2}
    months = pd.DatetimeIndex(panel.sessions).to_period("M")
    for t in range(T):
        hist = frame.iloc[: t + 1]  # the seed recomputes over the history every session
        vol_row = hist.rolling(vw, min_periods=vw).std().iloc[-1] * ann
        r = hist.rolling(sw, min_periods=sw)
        sharpe_row = (r.mean() / r.std()).iloc[-1] * ann
        vol, sharpe = {}, {}
        for s in names:
            tail_v = hist[s].to_numpy()[-vw:]
            v = float(vol_row[s])
            vol[s] = (
                0.0 if (t + 1 >= vw and not np.isnan(tail_v).any() and _all_equal(tail_v)) else v
            )
            tail_s = hist[s].to_numpy()[-sw:]
            eq = t + 1 >= sw and not np.isnan(tail_s).any() and _all_equal(tail_s)
            sharpe[s] = math.nan if eq else float(sharpe_row[s])
        corr = {}
        for a, b in pairs:
            c = float(hist[a].rolling(cw, min_periods=cw).corr(hist[b]).iloc[-1])
            ta, tb = hist[a].to_numpy()[-cw:], hist[b].to_numpy()[-cw:]
            if t + 1 >= cw and (_all_equal(ta) or _all_equal(tb)):
                c = math.nan
            corr[(a, b)] = c
            breach[(a, b)] = breach[(a, b)] + 1 if c > thr else 0
            calm[(a, b)] = calm[(a, b)] + 1 if c <= thr else 0
        # Re-admission, then benching.
        before = dict(benched)
        for s in names:
            if not benched[s]:
                continue
            judges = [x for x in names if x != s and not benched[x] and t - first[x] + 1 >= cw]
            if all(calm[tuple(sorted((s, x)))] >= persist for x in judges):
                benched[s] = False
        flagged = [
            p for p in pairs if breach[p] >= persist and not benched[p[0]] and not benched[p[1]]
        ]
        flagged.sort(key=lambda p: (-corr[p], p))
        for a, b in flagged:
            if benched[a] or benched[b]:
                continue
            sa, sb = sharpe[a], sharpe[b]
            if math.isnan(sa) and not math.isnan(sb):
                loser = a
            elif math.isnan(sb) or math.isnan(sa) or sa >= sb:
                loser = b
            else:
                loser = a
            benched[loser] = True
        changed = before != benched
        eligible = [s for s in names if not benched[s] and vol[s] > 0 and not math.isnan(vol[s])]
        scheduled = False
        if anchor is None and eligible:
            anchor, scheduled = t, True
        elif anchor is not None and (t - anchor) % config.sizing.rebalance_every == 0:
            scheduled = True
        if scheduled or changed:
            total = sum(1 / vol[s] for s in eligible)
            base = {s: ((1 / vol[s]) / total if s in eligible else 0.0) for s in names}
        # Breaker on month-to-date returns.
        month_rows = hist[months[: t + 1] == months[t]]
        for s in names:
            seen = month_rows[s].iloc[max(0, first[s] - (t + 1 - len(month_rows))) :]
            seen = seen[seen.index >= first[s]]
            mtd = math.nan if (seen.isna().any() or seen.empty) else float(np.prod(1 + seen) - 1)
            if math.isnan(mtd):
                continue
            if state[s] == "halted" and not sharpe[s] > brk.recovery_sharpe:
                continue
            state[s] = (
                "halted" if mtd <= brk.halt_at else "half" if mtd <= brk.half_at else "normal"
            )
        for j, s in enumerate(names):
            mult = {"normal": 1.0, "half": brk.half_multiplier, "halted": 0.0}[state[s]]
            final = 0.0 if benched[s] else base[s] * mult
            out["base_weight"][t, j] = base[s]
            out["final_weight"][t, j] = final
            out["capital"][t, j] = final * float(config.allocation.total_capital)
            out["benched"][t, j] = benched[s]
            out["breaker_state"][t, j] = codes[state[s]]
    return out
