"""Real broker adapters, one subpackage per venue with the same file roles.

``resource`` (the Dagster resource), ``client`` (the library wrapped behind
:class:`~allocator.execution.orders.Broker`), ``mapping`` (our order to the venue's request,
its reply to our records) and ``errors`` (definitive vs ambiguous). Import a venue's
subpackage directly: importing this package does not import any client library.
"""
