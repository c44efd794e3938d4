"""Allocator: run several trading strategies as one portfolio.

The pure domain core: statistics, the correlation drop rule, risk-parity sizing, the drawdown
breaker, the allocation and the replay engine that walks the sessions (SPEC §1-§6, §11), and in
:mod:`allocator.execution` one bar's gating, netting, attribution, routing and orders (SPEC
§7-§9). The Dagster project (``assets``, ``resources``, ``pipelines``) calls it; nothing here
imports Dagster, a storage library or a venue library (import-linter checks this in
``make test``), so the live pipeline, ``allocator replay`` and the tests run the same code.

Why the public names below are imported on first use (PEP 562) rather than at import time:
importing any submodule imports this package first, and the per-bar path
(:mod:`allocator.execution`) must not load numba and the rules' compiled kernels on the way.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from allocator.breaker import BreakerDecision
    from allocator.config import AllocatorConfig
    from allocator.data import ReturnsPanel, build_panel, load_returns
    from allocator.errors import AllocatorError, ConfigError, InputError, SolverError
    from allocator.replay import AllocatorEngine, Event, ReplayResult, SessionDecision, replay
    from allocator.settings import Settings, load_settings
    from allocator.sizing import erc_weights, inverse_vol_weights
    from allocator.states import BreakerState
    from allocator.stats import PairCorrelationStream, rolling_corr_all_pairs

# Where each public name lives. Imported on first use (PEP 562), so that importing one
# submodule (the per-bar path, say) does not load numba and the rules' kernels with it.
_LAZY = {
    "BreakerDecision": "allocator.breaker",
    "BreakerState": "allocator.states",
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
    "Settings": "allocator.settings",
    "load_settings": "allocator.settings",
    "erc_weights": "allocator.sizing",
    "inverse_vol_weights": "allocator.sizing",
    "PairCorrelationStream": "allocator.stats",
    "rolling_corr_all_pairs": "allocator.stats",
}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines public ``name`` and return the attribute (PEP 562)."""
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
    "Settings",
    "SolverError",
    "build_panel",
    "erc_weights",
    "inverse_vol_weights",
    "load_returns",
    "load_settings",
    "replay",
    "rolling_corr_all_pairs",
]
