"""Stage 5 (mapped, one per partition): bring its domains' output documents up to date.

For each domain: account engagements, relationships, contacts, timeline months and the domain
document (docs/SEMANTICS.md); for each organisation (every host of it is in the same partition and
chunk), its document and months; and the change feed's crossings of the relationships it changes
(recorded before the relationships are written, so a retry records them again). Every relationship
and contact carries its address's `person_id` (`mailforce.core.people`); the person documents are
built after every partition, by `compile_people`. A domain none of
whose window messages was counted before adds the window's new mail to the stored documents
(reading only this run's roles documents; a copy marked `counted_elsewhere` adds to its mailbox's
figures only, see `DomainRollup`); the others, and every domain of a retried task, are recomputed
over all time with every host of their organisations, and only what changed is written.
"""

from __future__ import annotations

import logging
import time
from typing import Mapping, Sequence

from mailforce.core.changes import CAUSE_MAIL
from mailforce.core.dates import format_utc, utc_now
from mailforce.core.kinds import CHANGES
from mailforce.core.org_rollups import add_organizations, window_organizations
from mailforce.core.organizations import organization_chunks
from mailforce.core.partitions import Partition
from mailforce.core.people import label_people
from mailforce.core.rollups import (
    Scoring,
    add_to_stored,
    flipped_to_automated,
    missing_from_stored,
    window_documents,
)
from mailforce.core.summaries import CompileResult, WrittenCounts
from mailforce.core.wording import plural
from mailforce.es.changes import record_relationship_changes
from mailforce.es.organizations import delete_stale_months
from mailforce.es.people import read_people
from mailforce.es.outputs import (
    kind_indices,
    recompute_documents,
    organization_hosts,
    output_id,
    rollup_of,
    stored_documents,
    write_documents,
)
from mailforce.es.writes import refresh
from mailforce.settings import Settings

log = logging.getLogger(__name__)

# Domains per terms query: far below Elasticsearch's index.max_terms_count (65,536).
DOMAINS_PER_QUERY = 5_000
# Role entries per chunk of domains read and rolled up together: a task's memory is bounded by this
# (or by its heaviest single domain), not by how many domains its partition holds.
WORK_PER_CHUNK = 40_000


def recompute_domains(es, settings: Settings, domains: Sequence[str], scoring: Scoring, updated_at: str
                      ) -> tuple[int, dict[str, int]]:
    """Every document of these domains and of every host of their organisations, from all their
    roles documents; writes what changed."""
    documents, read, written = recompute_documents(es, settings, organization_hosts(es, settings, domains), scoring,
                                                   updated_at, cause=CAUSE_MAIL, people=read_people(es, settings))
    months = {output_id("timeline", month) for month in documents.timeline if month["scope"] == "organization"}
    delete_stale_months(es, settings, [document["organization"] for document in documents.organizations], months)
    return read, written


def add_window_to_domains(es, settings: Settings, domains: Sequence[str], run_id: str, scoring: Scoring,
                          updated_at: str) -> tuple[int, dict[str, int], dict[str, str]]:
    """This run's new mail of these domains added to the stored documents.

    Returns the domains that must be recomputed instead, each with the reason: new mail flagged a
    known address as automated, which changes documents this window did not touch, or a copy
    counted elsewhere names an address the stored documents do not hold.
    """
    rollup = rollup_of(es, settings, domains, written_by_run=run_id)
    new = window_documents(rollup)
    stored, versions = stored_documents(es, settings, new)
    reasons = {domain: "new mail flagged a known address as automated"
               for domain in flipped_to_automated(new, stored, scoring)}
    for domain in missing_from_stored(new, stored) - set(reasons):
        reasons[domain] = "a copy counted in other mailboxes names an address missing from the stored contacts"
    organizations = settings.organizations
    by_organization = {organizations.organization_of(domain): reason for domain, reason in sorted(reasons.items())}
    # An organisation is recomputed whole: its figures are over all its hosts' messages.
    reasons = {domain: by_organization[organizations.organization_of(domain)] for domain in domains
               if organizations.organization_of(domain) in by_organization}
    new_organizations = window_organizations(rollup, new["contacts"], stored["contacts"])
    if reasons:
        new = {kind: [document for document in documents if document["domain"] not in reasons]
               for kind, documents in new.items()}
        new_organizations["organizations"] = [document for document in new_organizations["organizations"]
                                              if document["organization"] not in by_organization]
        new_organizations["organization_timeline"] = [document for document in new_organizations["organization_timeline"]
                                                      if document["organization"] not in by_organization]
    stored_organizations, organization_versions = stored_documents(es, settings, {
        "organizations": new_organizations["organizations"], "timeline": new_organizations["organization_timeline"]})
    versions["organizations"] = organization_versions["organizations"]
    versions["timeline"].update(organization_versions["timeline"])
    documents = add_to_stored(new, stored, scoring)
    add_organizations(new_organizations, stored_organizations, documents, organizations, scoring)
    label_people([*documents.relationships, *documents.contacts], read_people(es, settings))
    changes = record_relationship_changes(es, settings, stored["relationships"], documents.relationships,
                                          scoring_date=scoring.scoring_date, cause=CAUSE_MAIL, updated_at=updated_at)
    written = write_documents(es, settings, documents, updated_at, versions=versions)
    return rollup.messages_read, {**written, CHANGES.name: changes}, reasons


def compile_domains(es, settings: Settings, domains: Sequence[str], run_id: str, *, add_window: bool,
                    scoring: Scoring, updated_at: str | None = None,
                    work_by_domain: Mapping[str, int] | None = None) -> WrittenCounts:
    """The output documents of these whole domains, by either path (see the module docstring), in
    chunks of at most `WORK_PER_CHUNK` role entries by `work_by_domain` (a domain it does not know
    weighs 1, so without it the chunks are `DOMAINS_PER_QUERY` domains)."""
    updated_at = updated_at or format_utc(utc_now())
    total = WrittenCounts()
    for chunk in organization_chunks(domains, settings.organizations, work_by_domain or {}, WORK_PER_CHUNK,
                                     DOMAINS_PER_QUERY):
        recompute = list(chunk)
        if add_window:
            read, written, reasons = add_window_to_domains(es, settings, chunk, run_id, scoring, updated_at)
            total += WrittenCounts.of(read, written)
            recompute = sorted(reasons)
            for reason in sorted(set(reasons.values())):
                named = [domain for domain in recompute if reasons[domain] == reason]
                log.info("Recomputing %s over all time because %s: %s", plural(len(named), "domain"), reason,
                         ", ".join(named[:5]))
        if recompute:
            read, written = recompute_domains(es, settings, recompute, scoring, updated_at)
            total += WrittenCounts.of(read, written)
    return total


def compile_domain_partition(
    es, settings: Settings, partition: Partition, run_id: str, *, add_window: bool = True, scoring: Scoring
) -> CompileResult:
    """A mapped task's work: its domains, each by the path it needs.

    `add_window=False` recomputes every domain: a retry must, since a failed attempt may already
    have added the window to some documents.
    """
    started = time.monotonic()
    recompute = set(partition.recompute_domains) if add_window else set(partition.domains)
    organizations = settings.organizations
    recompute_organizations = {organizations.organization_of(domain) for domain in recompute}
    recompute |= {domain for domain in partition.domains if organizations.organization_of(domain) in recompute_organizations}
    written = WrittenCounts()
    added = [domain for domain in partition.domains if domain not in recompute]
    recomputed = [domain for domain in partition.domains if domain in recompute]
    work = partition.work_by_domain
    if recomputed:
        written += compile_domains(es, settings, recomputed, run_id, add_window=False, scoring=scoring,
                                   work_by_domain=work)
    if added:
        written += compile_domains(es, settings, added, run_id, add_window=True, scoring=scoring,
                                   work_by_domain=work)
    # later stages (and the digest) search what was written
    refresh(es, *kind_indices(settings).values(), settings.changes_index)
    how = []
    if added:
        how.append(f"added this run's new mail to {plural(len(added), 'domain')}")
    if recomputed:
        reason = ("this task is a retry: an earlier attempt may have added part of the window" if not add_window
                  else "a message of theirs was counted before")
        how.append(f"recomputed {plural(len(recomputed), 'domain')} over all time ({reason})")
    outcome = (f"wrote {written.describe()}" if written.documents_written
               else "unchanged (every document was already up to date, nothing written)")
    log.info(
        "Partition %s: %s; read %s; %s in %.1f s",
        partition.label, " and ".join(how) or "nothing to do", plural(written.roles_read, "roles document"),
        outcome, time.monotonic() - started,
    )
    return CompileResult(label=partition.label, written=written)
