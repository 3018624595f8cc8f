"""The people DAG's stages (`mailforce_people`): change the alias list, relabel what it touches, audit.

1. `validate_change`: the form checked (AliasChangeError names the field) before any write;
2. `apply_alias_change`: the accepted suggestions resolved, the entries written to the alias index;
   every address whose person changed gets its new `person_id` on its contacts and relationships
   (only that field changes: no figure of a domain or organisation depends on people), and the
   person documents of both sides (the persons it left and joined) are recomputed whole; then the
   audit record (who, when, why, what, and how much was rewritten).
`list_suggestions` lists the likely aliases an operator may accept (never applied on their own).
The command line (`mailforce.tools.people`) calls the same functions.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from mailforce.core.dates import format_utc, utc_now
from mailforce.core.people import AliasChange, Suggestion, accepted_aliases, parse_alias_change
from mailforce.core.wording import plural
from mailforce.es.people import alias_suggestions, change_aliases, read_people, write_alias_audit
from mailforce.settings import Settings

log = logging.getLogger(__name__)


def validate_change(params: Mapping[str, Any], requested_at: str | None = None) -> AliasChange:
    return parse_alias_change(params, requested_at or format_utc(utc_now()))


def list_suggestions(es, settings: Settings) -> list[Suggestion]:
    suggestions = alias_suggestions(es, settings, read_people(es, settings))
    log.info("%s", plural(len(suggestions), "alias suggestion"))
    return suggestions


def apply_alias_change(es, settings: Settings, change: AliasChange) -> dict[str, Any]:
    """Write the change, relabel the addresses whose person changed, recompute both sides' person
    documents, write the audit record; returns it."""
    updated_at = format_utc(utc_now())
    added = sorted({*change.added, *accepted_aliases(change, alias_suggestions(es, settings, read_people(es, settings)))})
    relabelled, written, deleted = change_aliases(es, settings, added, change.removed, change.to_xcom(), updated_at)
    record = {**change.to_xcom(), "added": [f"{left}={right}" for left, right in added],
              "addresses_relabelled": relabelled, "people_written": written, "people_deleted": deleted,
              "finished_at": format_utc(utc_now())}
    write_alias_audit(es, settings, record)
    log.info("Alias change %s by %s: %s added, %s removed; %s relabelled; %s written, %s deleted",
             change.change_id, change.requested_by, plural(len(added), "entry", "entries"),
             plural(len(change.removed), "entry", "entries"), plural(relabelled, "address", "addresses"),
             plural(written, "person document"), f"{deleted:,}")
    return record
