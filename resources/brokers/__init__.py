"""The venues: one subpackage per venue with the same rooms, and the registry that builds them.

Each of ``alpaca``, ``ccxt``, ``ibkr`` and ``paper`` (the built-in simulated venue) has
``client`` (the broker behind :class:`~allocator.execution.orders.Broker`: the venue's library
wrapped, or the simulation itself) and ``resource`` (its Dagster resource, nothing else); the
real adapters add ``mapping`` (our order to the venue's request, its reply to our records) and
``errors`` (definitive vs ambiguous), the paper broker ``fees`` (its fee schedule per venue).
``base`` and ``common`` are what the adapters share (the resource base class, the live-mode
guard, rate limiting, instrument rules).

:mod:`resources.brokers.registry` is the one place that builds venues, for the pipeline (the
simulated venue everywhere, for now) and for the ``allocator broker`` commands (the real
adapter, paper unless ``*_MODE=live`` and the venue's live URL) alike (SPEC §8-§9). Import a
venue's subpackage directly: importing this package does not import any client library.
"""
