"""Regenerate ``demo/data/sample_returns.csv``: six synthetic strategies, 2019-2022.

Deterministic (seeded). The sample is built so that every rule fires on it: ``news`` and
``flow`` are driven by one common factor for a year (bench, then re-admission once they
decorrelate), ``earnings`` starts a year late (warm-up), ``trend`` loses about 18% in one month
(half), ``pairs`` about 30% (halted, released once its Sharpe recovers), and ``carry`` trades
weekends too (its Saturday and Sunday returns compound into Monday).

Usage: python scripts/make_sample_returns.py [OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ANNUAL_VOL = {
    "pairs": 0.06,
    "carry": 0.04,
    "earnings": 0.12,
    "trend": 0.16,
    "news": 0.14,
    "flow": 0.14,
}


def main(out: Path) -> None:
    rng = np.random.default_rng(20261123)
    days = pd.bdate_range("2019-01-02", "2022-12-30")
    n = len(days)
    daily = {k: v / np.sqrt(252) for k, v in ANNUAL_VOL.items()}
    r = {k: rng.normal(0.08 / 252, daily[k], n) for k in ANNUAL_VOL}
    common = rng.normal(0.0, 1.0, n)
    in_regime = (days >= "2020-03-01") & (days < "2021-03-01")
    for k in ("news", "flow"):
        idio = rng.normal(0.0, 1.0, n)
        mixed = np.where(in_regime, 0.95 * common + 0.31 * idio, idio)
        r[k] = 0.0004 + daily[k] * mixed
    crash = (days >= "2021-06-01") & (days < "2021-06-20")
    r["trend"] = np.where(crash, r["trend"] - 0.0135, r["trend"])
    crash2 = (days >= "2020-10-01") & (days < "2020-10-22")
    r["pairs"] = np.where(crash2, -0.0185, r["pairs"])
    recovery = (days >= "2020-11-01") & (days < "2021-04-01")
    r["pairs"] = np.where(recovery, r["pairs"] + 0.0012, r["pairs"])
    rows = []
    for k, values in r.items():
        for d, v in zip(days, values, strict=True):
            if k == "earnings" and d < pd.Timestamp("2020-01-02"):
                continue
            rows.append((d.date().isoformat(), k, repr(float(v))))
    weekends = pd.date_range("2019-01-05", "2022-12-25", freq="W-SAT")
    for sat in weekends:
        for d in (sat, sat + pd.Timedelta(days=1)):
            rows.append((d.date().isoformat(), "carry", repr(float(rng.normal(0.0, 0.0008)))))
    frame = pd.DataFrame(rows, columns=["date", "strategy", "return"])
    frame = frame.sort_values(["date", "strategy"], kind="stable")
    # Two missing days for "earnings" (empty fields), as a real feed has.
    frame.loc[
        (frame.strategy == "earnings") & frame.date.isin(["2021-02-03", "2021-02-04"]), "return"
    ] = ""
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print(f"wrote {len(frame)} rows to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("demo/data/sample_returns.csv"))
