"""Research on a user's own returns: parameter sweeps and walk-forward (``allocator sweep``).

* :mod:`allocator.research.grid`: the grid file (a list of values per ``section.key``), checked
  with the configuration's own validation, and its cartesian product.
* :mod:`allocator.research.sweep`: every configuration of the product replayed with the engine
  (:func:`allocator.replay.decide` over statistics shared by the configurations with the same
  windows), in process or on a Dask cluster, resumable through a journal of finished cells.
* :mod:`allocator.research.walk_forward`: the best configuration of each training window
  applied to the next test window, against the default configuration.
* :mod:`allocator.research.page`: ``sweep.html``.

Dask is imported only by the sweep's cluster path (:func:`allocator.research.sweep.run_sweep`
with a client), so the core's other users never load it.
"""
