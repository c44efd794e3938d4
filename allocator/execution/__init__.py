"""The execution core: one bar between the strategies and a broker (SPEC §7-§9).

Modules, in the order a bar flows through them: ``records`` (the bar, intents, budgets and
outcomes), ``reasons`` (the one vocabulary of refusals), ``instruments`` (the symbol table),
``inbox`` (checking submitted intents and returns), ``routing`` (where each order goes),
``book`` (the bar in columns), ``gating``, ``netting``, ``attribution``, ``orders`` (the orders,
their states, the broker interface and the one submission path) and ``bar`` (orchestration
around a ledger and the brokers). Around the bar: ``ledger`` (the :class:`Ledger` protocol:
what the core needs of the ledger), ``reconcile`` (each venue against the ledger, SPEC §9) and
``manual`` (one operator order). The strategy states are in :mod:`allocator.states`, the
error types in :mod:`allocator.errors`.
"""

from allocator.execution.attribution import Attribution, attribute, largest_remainder
from allocator.execution.bar import (
    BarOutcome,
    BarPlan,
    BarRun,
    FeeModel,
    load_or_freeze_plan,
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
from allocator.execution.ledger import Ledger
from allocator.execution.netting import Netting, net_takes
from allocator.execution.orders import BrokerExecution, NetOrder
from allocator.execution.reasons import Reason
from allocator.execution.records import (
    Bar,
    GatedIntent,
    Intent,
    StrategyBudget,
    VirtualFill,
    parse_bar,
)
from allocator.execution.routing import RoutedIntent, route_intents, venue_of
from allocator.states import StrategyState

__all__ = [
    "DEFAULT_INSTRUMENTS",
    "Attribution",
    "Bar",
    "BarBook",
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
    "Ledger",
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
    "load_or_freeze_plan",
    "net_takes",
    "parse_bar",
    "plan_bar",
    "route_intents",
    "run_bar",
    "settle_bar",
    "venue_of",
]
