"""The plain per-intent Python loop that the vectorised hot path is measured and checked against.

It does the work of gating, netting and attribution (SPEC §7) one intent and one strategy at a
time, with Decimal notionals and Fraction shares and no numpy, so that it is an independent
second implementation: tests compare the vectorised core with it on random bars, and
``bench_hot_path.py`` times both on the same bar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction

__all__ = ["reference_bar"]

BlockReason = str | None


def _largest_remainder(
    members: Sequence[tuple[str, int]], total: int, denom: int, caps: Mapping[str, int] | None
) -> dict[str, int]:
    """Split ``total`` pro rata to weight/denom; leftover units by remainder, then name."""
    if denom == 0:
        return {name: 0 for name, _ in members}
    shares: dict[str, int] = {}
    rems: list[tuple[Fraction, str]] = []
    for name, weight in members:
        quota = Fraction(total * weight, denom)
        shares[name] = math.floor(quota)
        rems.append((quota - shares[name], name))
    left = total - sum(shares.values())
    rems.sort(key=lambda item: (-item[0], item[1]))
    for _, name in rems:
        if left == 0:
            break
        if caps is not None and shares[name] >= caps[name]:
            continue
        shares[name] += 1
        left -= 1
    return shares


def reference_bar(
    intents: Sequence[tuple[str, str, str, int]],
    positions: Mapping[tuple[str, str], int],
    unit: Mapping[str, Decimal | None],
    limits: Mapping[str, Decimal] | None,
    blocked: Mapping[str, BlockReason],
    filled: Mapping[str, int] | None,
    fee_units: Mapping[str, int],
) -> tuple[dict[str, tuple[int, str | None]], dict[tuple[str, str], tuple[int, int, int]]]:
    """One bar, the slow way.

    ``intents``: (intent_id, strategy, symbol, lots). ``positions``: start lots. ``unit``:
    lot × price per symbol (``None``: no price). ``limits``: gross notional cap per strategy
    (``None``: no limit; a strategy missing has 0). ``blocked``: ``benched``/``halted``.
    ``filled``/``fee_units``: the broker's fill (lots; ``None``: every net order fills in
    full) and fee (quanta) per symbol; a fee is charged only where something filled.
    Returns ({intent_id: (accepted lots, reason)}, {(strategy, symbol): (internal, external,
    fee units)}).
    """
    pos: dict[tuple[str, str], int] = dict(positions)
    gross: dict[str, Decimal] = {}
    unpriced: dict[str, int] = {}
    for (s, m), q in positions.items():
        if q == 0:
            continue
        u = unit.get(m)
        if u is None:
            unpriced[s] = unpriced.get(s, 0) + 1
        else:
            gross[s] = gross.get(s, Decimal(0)) + abs(q) * u
    outcome: dict[str, tuple[int, str | None]] = {}
    takes: dict[tuple[str, str], int] = {}
    for intent_id, s, m, q in sorted(intents, key=lambda i: (i[1], i[0])):
        p = pos.get((s, m), 0)
        u = unit.get(m)
        out = 0
        if p > 0 > q:
            out = max(q, -p)
        elif p < 0 < q:
            out = min(q, -p)
        p += out
        if out and u is not None:
            gross[s] = gross.get(s, Decimal(0)) - abs(out) * u
        elif out and p == 0:
            unpriced[s] -= 1
        entry = q - out
        granted = 0
        reason: str | None = None
        if entry:
            limit = None if limits is None else limits.get(s, Decimal(0))
            if blocked.get(s):
                reason = blocked[s]
            elif unpriced.get(s, 0) > 0 or u is None:
                reason = "no_price"
            else:
                size = abs(entry)
                if limit is not None:
                    room = limit - gross.get(s, Decimal(0))
                    if room < size * u:
                        size = max(math.floor(room / u), 0) if room > 0 else 0
                        reason = "budget"
                gross[s] = gross.get(s, Decimal(0)) + size * u
                granted = size if entry > 0 else -size
                p += granted
        pos[(s, m)] = p
        outcome[intent_id] = (out + granted, reason)
        takes[(s, m)] = takes.get((s, m), 0) + out + granted
    by_symbol: dict[str, list[tuple[str, int]]] = {}
    for (s, m), take in sorted(takes.items()):
        by_symbol.setdefault(m, []).append((s, take))
    shares: dict[tuple[str, str], tuple[int, int, int]] = {}
    for m, rows in by_symbol.items():
        buy = sum(t for _, t in rows if t > 0)
        sell = -sum(t for _, t in rows if t < 0)
        sign = (buy > sell) - (buy < sell)
        larger = [(s, abs(t)) for s, t in rows if t != 0 and sign != 0 and (t > 0) == (sign > 0)]
        heavy = max(buy, sell)
        x_share = _largest_remainder(larger, min(buy, sell), heavy, None)
        caps = {s: w - x_share[s] for s, w in larger}
        f = abs(buy - sell) if filled is None else filled.get(m, 0)
        fee = fee_units.get(m, 0) if f else 0
        f_share = _largest_remainder(larger, f, heavy, caps)
        fee_members = [(s, f_share[s]) for s, _ in larger] if f else larger
        fee_share = _largest_remainder(fee_members, fee, f or heavy, None)
        for s, t in rows:
            if s in x_share:
                shares[(s, m)] = (sign * x_share[s], sign * f_share[s], fee_share[s])
            else:
                shares[(s, m)] = (t, 0, 0)
    return outcome, shares
