"""Allocator: run several trading strategies as one portfolio.

The pure domain core (no Dagster import anywhere in this package): statistics, the correlation
drop rule, risk-parity sizing, the drawdown breaker, the allocation and the replay engine that
walks the sessions. The Dagster project (``assets``, ``resources``, ``pipelines``) calls it.
"""

from allocator.breaker import BreakerDecision, BreakerState
from allocator.config import AllocatorConfig
from allocator.data import ReturnsPanel, build_panel, load_returns
from allocator.errors import AllocatorError, ConfigError, InputError, SolverError
from allocator.replay import AllocatorEngine, Event, ReplayResult, SessionDecision, replay
from allocator.sizing import erc_weights, inverse_vol_weights
from allocator.stats import PairCorrelationStream, rolling_corr_all_pairs

__all__ = [
    "AllocatorConfig",
    "AllocatorEngine",
    "AllocatorError",
    "BreakerDecision",
    "BreakerState",
    "ConfigError",
    "Event",
    "InputError",
    "PairCorrelationStream",
    "ReplayResult",
    "ReturnsPanel",
    "SessionDecision",
    "SolverError",
    "build_panel",
    "erc_weights",
    "inverse_vol_weights",
    "load_returns",
    "replay",
    "rolling_corr_all_pairs",
]
