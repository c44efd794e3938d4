"""The Dagster assets and asset checks: thin wrappers that load, call the core, say what they did.

By stage: ``rules`` (returns to the published allocation, SPEC §1-§6), ``execution`` (one bar
from the inbox to P&L, SPEC §7-§9), ``checks`` and ``_gx`` (data quality at every step),
``guard`` (no trading on an allocation whose checks failed, in any run), ``venues`` (the
reconciliation halt as a check) and ``dashboard`` (the P&L page); ``tags`` names every run tag.
It may import ``allocator`` and ``resources``; only ``pipelines``, ``demo`` and ``cli`` import it.
"""
