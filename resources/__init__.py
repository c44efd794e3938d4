"""What the core talks to: the ledger of record, the venues and the market data, each behind an
interface the core defines.

``ledger`` (SQLAlchemy Core + Alembic; SQLite WAL by default, PostgreSQL by URL) implements the
core's ledger protocol; ``brokers`` holds one subpackage per venue (``alpaca``, ``ccxt``,
``ibkr`` and the simulated ``paper``) with the same rooms, and the registry that builds them;
``market_data`` the price sources; ``dagster_resources`` the Dagster resources that wrap them.
It may import ``allocator`` only; ``assets``, ``pipelines``, ``demo`` and ``cli`` import it.
"""
