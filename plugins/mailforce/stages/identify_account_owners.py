"""Stage 3: each mailbox's own addresses, before the compile counts direct exchange with them.

For every account the window counted mail of (and every account the setting `account_addresses`
names): its owner addresses, from the setting or inferred from its mail (the address on most of its
messages), written with the evidence to its statistics document (docs/SEMANTICS.md, "Conversations").
An account this run only added new roles documents to gets its evidence from the stored one plus
those documents (and exact counts of the few addresses that could reach its top three); otherwise it
is counted over all its roles documents.
When an account's owners changed, every direct figure of its relationships changes: the domains it
has mail with join the partitions, to be recomputed over all time.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from mailforce.core.summaries import ExtractionSummary
from mailforce.core.wording import plural
from mailforce.es.owners import identify_owners
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def identify_account_owners(es, settings: Settings, extraction: ExtractionSummary, run_id: str) -> ExtractionSummary:
    """The extraction's summary, with the domains of accounts whose owners changed to recompute."""
    changes = identify_owners(es, settings, extraction.accounts, run_id,
                              rewritten_accounts=extraction.rewritten_accounts)
    log.info("Owner evidence of %s: %s added this run's new mail to the stored evidence (counting %s in doubt "
             "exactly), %s counted over all their mail", plural(changes.evidence_added + changes.evidence_counted, "account"),
             f"{changes.evidence_added:,}", plural(changes.doubtful_addresses_counted, "address", "addresses"),
             f"{changes.evidence_counted:,}")
    if not changes.changed_accounts:
        log.info("The owner addresses of %s are unchanged", plural(changes.accounts_written, "account"))
        return extraction
    work = dict(extraction.work_by_domain)
    for domain, messages in changes.domains.items():
        work[domain] = max(work.get(domain, 0), messages)
    log.info("The owner addresses of %s changed (%s%s): %s recomputed over all time",
             plural(len(changes.changed_accounts), "account"), ", ".join(changes.changed_accounts[:5]),
             ", ..." if len(changes.changed_accounts) > 5 else "", plural(len(changes.domains), "domain"))
    return replace(extraction, work_by_domain=work,
                   recompute_domains=tuple(sorted(set(extraction.recompute_domains) | set(changes.domains))))
