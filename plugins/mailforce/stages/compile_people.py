"""Stage 6 (once per run, after every partition): the person documents the run's writes touched.

A person's addresses may lie in domains of different partitions (an alias joins a gmail address to a
company's), so their document is built here, once every partition is written, from the stored
contacts (`person_id` on each) and, for a person with several addresses, from the roles documents
naming any of them (docs/ARCHITECTURE.md, "People after the compile"). The persons are those of
every address whose contact or relationship was written since the last successful run ended
(less a clock margin), by this run or by a failed one (`people_since`); their documents are recomputed whole, so
reading more than needed changes nothing. Outputs from before people (contacts without
`person_id`) are labelled and every person is built.
"""

from __future__ import annotations

import logging
import time

from mailforce.core.dates import format_utc, utc_now
from mailforce.core.summaries import PeopleResult
from mailforce.core.wording import plural
from mailforce.es.people import (
    addresses_written_since,
    people_since,
    read_people,
    refresh_people,
    relabel,
    unlabelled_contacts,
)
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def compile_people(es, settings: Settings) -> PeopleResult:
    """The person documents of every address written since the last successful run (see above)."""
    started = time.monotonic()
    updated_at = format_utc(utc_now())
    people = read_people(es, settings)
    relabelled = 0
    if unlabelled_contacts(es, settings):
        relabelled = len(relabel(es, settings, people, None, updated_at))
        since = None
        why = "every address (outputs from before people: labelled first)"
    else:
        since = people_since(es, settings)
        why = f"the addresses written since {since}" if since else "every address (first run)"
    addresses = addresses_written_since(es, settings, since)
    written, deleted = refresh_people(es, settings, people, addresses, updated_at)
    log.info("People of %s: %s, %s deleted (no address left), %s relabelled, in %.1f s",
             why, plural(written, "person document") + " written" if written else "unchanged",
             f"{deleted:,}", plural(relabelled, "address", "addresses"), time.monotonic() - started)
    return PeopleResult(addresses_read=len(addresses), people_written=written, people_deleted=deleted,
                        addresses_relabelled=relabelled)
