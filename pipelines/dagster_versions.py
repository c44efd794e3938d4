"""The Dagster versions this project's extensions of Dagster's private modules were tested with.

:mod:`pipelines.run_launcher` (the warm bar-run launcher, which refuses to load on any other) and
:mod:`pipelines.storage` (SQLite storages keeping their engines, which fall back to Dagster's own
behaviour on any other) reach into ``dagster._*`` modules; both were tested on these versions by
tests/pipelines/test_run_launcher.py, test_daemon.py and test_storage.py.
"""

TESTED_DAGSTER_VERSIONS = frozenset({"1.13.27"})
