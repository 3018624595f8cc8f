"""Stage 3: the domains the window touched -> partitions balanced by work, whole organisations each."""

from __future__ import annotations

import logging

from mailforce.core.organizations import partitions_by_organization
from mailforce.core.partitions import Partition
from mailforce.core.summaries import ExtractionSummary
from mailforce.core.wording import plural
from mailforce.es.organizations import regroup_organizations
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def list_domains(extraction: ExtractionSummary, settings: Settings, es=None) -> list[Partition]:
    """The partitions, each knowing which of its domains are recomputed over all time (with a
    recomputed domain, every host of its organisation: the organisation is recomputed whole)."""
    organizations = settings.organizations
    work_by_domain = dict(extraction.work_by_domain)
    # What decides organisations changed since the last run (given a client): their hosts, regrouped
    regrouped = regroup_organizations(es, settings) if es is not None else {}
    for host, work in regrouped.items():
        work_by_domain[host] = max(work_by_domain.get(host, 0), work)
    recompute_organizations = {organizations.organization_of(domain)
                               for domain in (*extraction.recompute_domains, *regrouped)}
    recompute = {domain for domain in work_by_domain if organizations.organization_of(domain) in recompute_organizations}
    partitions = [
        partition.with_recompute(recompute)
        for partition in partitions_by_organization(
            work_by_domain, organizations, settings.max_partitions, settings.min_partition_work
        )
    ]
    for partition in partitions:
        log.info("Partition %s", partition.label)
    domains = len(work_by_domain)
    log.info("%d of %s recomputed over all time (a message of theirs was counted before), the others add "
             "the window's new mail; %s", len(recompute), plural(domains, "domain"),
             plural(len(partitions), "partition"))
    return partitions
