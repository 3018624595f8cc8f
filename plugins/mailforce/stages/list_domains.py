"""Stage 3: the domains the window touched -> partitions balanced by work."""

from __future__ import annotations

import logging

from mailforce.core.partitions import Partition, plan_partitions
from mailforce.core.summaries import ExtractionSummary
from mailforce.core.wording import plural
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def list_domains(extraction: ExtractionSummary, settings: Settings) -> list[Partition]:
    """The partitions, each knowing which of its domains are recomputed over all time."""
    recompute = set(extraction.recompute_domains)
    partitions = [
        partition.with_recompute(recompute)
        for partition in plan_partitions(
            extraction.work_by_domain, settings.max_partitions, settings.min_partition_work
        )
    ]
    for partition in partitions:
        log.info("Partition %s", partition.label)
    domains = extraction.domains_count
    log.info("%d of %s recomputed over all time (a message of theirs was counted before), the others add "
             "the window's new mail; %s", len(recompute), plural(domains, "domain"),
             plural(len(partitions), "partition"))
    return partitions
