"""The test suite; its folders mirror the packages (``allocator``, ``resources``, ``assets``,
``pipelines``, ``cli``, ``demo``), plus ``contract`` (one suite per interface, run against every
implementation) and ``fakes`` (local venue servers on 127.0.0.1)."""
