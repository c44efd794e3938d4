"""The execution core: one bar between the strategies and a broker (SPEC §7-§9).

Modules, in the order a bar flows through them: ``records`` (the frozen records),
``instruments`` (the symbol table), ``inbox`` (checking submitted intents and returns),
``routing``, ``book`` (the bar in columns), ``gating``, ``netting``, ``attribution`` and
``bar`` (orchestration around a ledger and the brokers).
"""

from allocator.execution.attribution import Attribution, attribute, largest_remainder
from allocator.execution.bar import (
    BarIncompleteError,
    BarLedger,
    BarOutcome,
    BarPlan,
    BarRun,
    FeeModel,
    plan_bar,
    run_bar,
    settle_bar,
)
from allocator.execution.book import BarBook, build_book
from allocator.execution.gating import GateResult, gate
from allocator.execution.instruments import (
    DEFAULT_INSTRUMENTS,
    Instrument,
    InstrumentTable,
    load_instruments,
)
from allocator.execution.netting import Netting, net_takes
from allocator.execution.records import (
    Bar,
    BrokerExecution,
    GatedIntent,
    Intent,
    NetOrder,
    Reason,
    StrategyBudget,
    StrategyState,
    VirtualFill,
    parse_bar,
)
from allocator.execution.routing import RoutedIntent, route_intents

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "Attribution",
    "Bar",
    "BarBook",
    "BarIncompleteError",
    "BarLedger",
    "BarOutcome",
    "BarPlan",
    "BarRun",
    "BrokerExecution",
    "FeeModel",
    "GateResult",
    "GatedIntent",
    "Instrument",
    "InstrumentTable",
    "Intent",
    "NetOrder",
    "Netting",
    "Reason",
    "RoutedIntent",
    "StrategyBudget",
    "StrategyState",
    "VirtualFill",
    "attribute",
    "build_book",
    "gate",
    "largest_remainder",
    "load_instruments",
    "net_takes",
    "parse_bar",
    "plan_bar",
    "route_intents",
    "run_bar",
    "settle_bar",
]
