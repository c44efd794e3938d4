"""Allocator: run several trading strategies as one portfolio.

The pure domain core (no Dagster import anywhere in this package): statistics, the correlation
drop rule, risk-parity sizing, the drawdown breaker, the allocation and the replay engine that
walks the sessions. The Dagster project (``assets``, ``resources``, ``pipelines``) calls it.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from allocator.breaker import BreakerDecision, BreakerState
    from allocator.config import AllocatorConfig
    from allocator.data import ReturnsPanel, build_panel, load_returns
    from allocator.errors import AllocatorError, ConfigError, InputError, SolverError
    from allocator.replay import AllocatorEngine, Event, ReplayResult, SessionDecision, replay
    from allocator.sizing import erc_weights, inverse_vol_weights
    from allocator.stats import PairCorrelationStream, rolling_corr_all_pairs

# Where each public name lives. Imported on first use (PEP 562), so that importing one
# submodule (the per-bar path, say) does not load numba and the rules' kernels with it.
_LAZY = {
    "BreakerDecision": "allocator.breaker",
    "BreakerState": "allocator.breaker",
    "AllocatorConfig": "allocator.config",
    "ReturnsPanel": "allocator.data",
    "build_panel": "allocator.data",
    "load_returns": "allocator.data",
    "AllocatorError": "allocator.errors",
    "ConfigError": "allocator.errors",
    "InputError": "allocator.errors",
    "SolverError": "allocator.errors",
    "AllocatorEngine": "allocator.replay",
    "Event": "allocator.replay",
    "ReplayResult": "allocator.replay",
    "SessionDecision": "allocator.replay",
    "replay": "allocator.replay",
    "erc_weights": "allocator.sizing",
    "inverse_vol_weights": "allocator.sizing",
    "PairCorrelationStream": "allocator.stats",
    "rolling_corr_all_pairs": "allocator.stats",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'allocator' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


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
