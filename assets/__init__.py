"""The Dagster assets of the allocator, by stage: ``rules`` (daily rule set and the published
allocation), ``execution`` (one bar from the inbox to P&L), ``checks`` (data quality at every
step) and ``guard`` (no trading on an allocation whose checks failed, in any run)."""
