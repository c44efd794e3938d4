"""Several processes write the SQLite ledger at once (strategies submitting intents while a
bar reads them): WAL mode and the busy timeout make every write land, none is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from allocator.execution import parse_bar
from resources.ledger import Ledger

ROOT = Path(__file__).resolve().parents[3]
WRITER = """
import sys
from decimal import Decimal
from allocator.execution import Intent, parse_bar
from allocator.execution.orders import AssetClass
from resources.ledger import Ledger
ledger = Ledger(sys.argv[1])
for k in range(40):
    ledger.submit_intents([Intent(intent_id=f"{sys.argv[2]}-{k:03d}", strategy=sys.argv[2],
        symbol="SPY", asset_class=AssetClass.ETF, qty=Decimal(1), bar=parse_bar("2024-05-01"))])
ledger.close()
"""


def test_parallel_writers_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    Ledger(url).close()  # migrate once before the writers start
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, name], env=env, stderr=subprocess.PIPE)
        for name in ("A", "B", "C")
    ]
    reader = Ledger(url)
    seen = [len(reader.intents_for_bar(parse_bar("2024-05-01")))]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    seen.append(len(reader.intents_for_bar(parse_bar("2024-05-01"))))
    reader.close()
    assert seen[-1] == 120
    assert seen == sorted(seen)
