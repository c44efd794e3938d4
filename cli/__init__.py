"""The ``allocator`` command line: one module per group of sub-commands.

``cli.main`` builds the parser and maps the errors the allocator raises on purpose to exit
code 2; ``replay``, ``execution`` (the inbox and the offline bar), ``broker`` (operator
commands against a venue) and ``demo`` each add their sub-commands. This is a composition
root: it may import every other package (``allocator``, ``resources``, ``assets``,
``pipelines``, ``demo``); nothing imports it.
"""
