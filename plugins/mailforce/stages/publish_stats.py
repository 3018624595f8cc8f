"""Stage 8: write the runtime-stats record; the watermark moves only now (not for backfills).

The record is built from the other stages' summaries by `mailforce.core.run_stats.runtime_stats`.
"""

from __future__ import annotations

from mailforce.core.summaries import RunStats
from mailforce.es.organizations import organizations_record
from mailforce.es.watermark import publish_runtime_stats
from mailforce.settings import Settings


def publish_stats(es, settings: Settings, stats: RunStats) -> RunStats:
    """Write the record of this successful run (with what its organisations were computed with:
    the next run regroups hosts when that changes); returns it."""
    stats = RunStats(document={**stats.document, **organizations_record(es, settings)})
    publish_runtime_stats(es, settings, stats)
    return stats
