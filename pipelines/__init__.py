"""How the assets run: the definitions, jobs, the rebalance schedule, the bar sensor and the warm
run launcher with its worker.

``definitions`` is the code location (``[tool.dg]`` in ``pyproject.toml``); ``jobs`` selects the
asset groups; ``schedules`` fires at each XNYS session's close; ``sensors`` starts one bar run
per complete bar; ``run_launcher`` and ``run_worker`` start bar runs in a process that loaded the
code in advance. It may import ``assets``, ``resources`` and ``allocator``; only ``demo`` and
``cli`` import it.
"""
