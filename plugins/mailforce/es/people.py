"""People in Elasticsearch: the alias list and its audit, `person_id` on contacts and relationships,
and the person documents (docs/SEMANTICS.md, "People"; docs/ARCHITECTURE.md says why they are built
after the compile).

Shared by the people stage of a run, the erasure and the alias changes (stages import `core` and
`es`, never each other).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from elasticsearch import NotFoundError

from mailforce.core.batches import batched
from mailforce.core.dates import format_utc, parse_source_date
from mailforce.core.ids import document_id
from mailforce.core.people import (
    People,
    PersonFigures,
    Suggestion,
    person_document,
    suggest_aliases,
    touched_mailboxes,
)
from mailforce.core.rollups import COMPILE_READ_FIELDS
from mailforce.es.indices import create_index
from mailforce.es.reads import count, fetch_documents, scan, search
from mailforce.es.writes import bulk_write, index_actions, refresh
from mailforce.settings import Settings

log = logging.getLogger(__name__)

KEYWORD = {"type": "keyword"}
TEXT = {"type": "text"}
DATE = {"type": "date", "format": "strict_date_optional_time"}
ALIASES_PROPERTIES = {
    "email_address": KEYWORD,  # the address joined ...
    "same_person_as": KEYWORD,  # ... to the person of this one
    "change_id": KEYWORD,  # the audit record of the change that recorded it
    "requested_by": KEYWORD,
    "requested_at": DATE,
}
ALIASES_AUDIT_PROPERTIES = {
    "change_id": KEYWORD,
    "requested_by": KEYWORD,
    "requested_at": DATE,
    "reason": TEXT,
    "added": KEYWORD,  # address=address entries added (or re-pointed)
    "removed": KEYWORD,  # addresses whose entry was removed
    "accepted_suggestions": KEYWORD,
    "addresses_relabelled": {"type": "integer"},
    "people_written": {"type": "integer"},
    "people_deleted": {"type": "integer"},
    "finished_at": DATE,
}
# Clock differences between workers: a run's people stage re-reads what was written this long before
# the last successful run ended (re-reading is harmless: a person's document is recomputed whole).
CLOCK_MARGIN = timedelta(hours=1)
TERMS_PER_QUERY = 1_000


def ensure_alias_indices(es, settings: Settings) -> None:
    for name, properties in ((settings.aliases_index, ALIASES_PROPERTIES),
                             (settings.aliases_audit_index, ALIASES_AUDIT_PROPERTIES)):
        if not es.indices.exists(index=name):
            create_index(es, settings, name, properties, shards=1)


def read_people(es, settings: Settings) -> People:
    """The person of every address under the alias list (one scan of a small index)."""
    if not es.indices.exists(index=settings.aliases_index):
        return People()
    hits = scan(es, settings.aliases_index, {"query": {"match_all": {}}, "_source": ["email_address", "same_person_as"]},
                settings.scan_page_size, settings.scroll_keep_alive, "the alias list")
    return People(tuple(sorted((hit["_source"]["email_address"], hit["_source"]["same_person_as"]) for hit in hits)))


def write_aliases(es, settings: Settings, added: Sequence[tuple[str, str]], removed: Sequence[str],
                  audit: Mapping[str, Any]) -> None:
    """The alias entries added (one per address: its id) and removed."""
    ensure_alias_indices(es, settings)
    entries = [(document_id(address), {"email_address": address, "same_person_as": other,
                                       "change_id": audit["change_id"], "requested_by": audit["requested_by"],
                                       "requested_at": audit["requested_at"]}) for address, other in added]
    bulk_write(es, index_actions(settings.aliases_index, entries), settings.bulk_chunk, "alias entries")
    deletes = [{"_op_type": "delete", "_index": settings.aliases_index, "_id": document_id(address)}
               for address in removed]
    _delete_quietly(es, deletes)
    refresh(es, settings.aliases_index)


def change_aliases(es, settings: Settings, added: Sequence[tuple[str, str]], removed: Sequence[str],
                   audit: Mapping[str, Any], updated_at: str) -> tuple[int, int, int]:
    """Write alias entries (added, and removed by their address), then give every address whose
    person changed its new `person_id` and recompute the person documents of both sides (the persons
    the touched addresses belonged to before, and belong to now). Returns (addresses relabelled,
    person documents written, person documents deleted)."""
    before = read_people(es, settings)
    named = {address for pair in added for address in pair} | set(removed)
    named |= {other for address, other in before.aliases if address in set(removed)}
    write_aliases(es, settings, added, removed, audit)
    after = read_people(es, settings)
    mailboxes = touched_mailboxes(before, after, named)
    person_ids = {people.person_of(mailbox) for mailbox in mailboxes for people in (before, after)}
    addresses = addresses_of_people(es, settings, person_ids) | named
    relabelled = relabel(es, settings, after, addresses, updated_at)
    written, deleted = refresh_people(es, settings, after, addresses, updated_at)
    return len(relabelled), written, deleted


def entries_naming(people: People, erased: Callable[[str], bool]) -> list[str]:
    """The addresses of the alias entries that name an erased address on either side."""
    return sorted(address for address, other in people.aliases if erased(address) or erased(other))


def write_alias_audit(es, settings: Settings, document: Mapping[str, Any]) -> None:
    ensure_alias_indices(es, settings)
    bulk_write(es, index_actions(settings.aliases_audit_index, [(document["change_id"], dict(document))]), 1,
               "alias audit")
    refresh(es, settings.aliases_audit_index)


def _delete_quietly(es, actions: list[dict[str, Any]]) -> int:
    """Delete by id; an id already gone is fine (idempotent)."""
    from elasticsearch import helpers

    deleted = 0
    for ok, item in helpers.streaming_bulk(es, actions, raise_on_error=False):
        status = next(iter(item.values())).get("status")
        if ok:
            deleted += 1
        elif status != 404:
            raise RuntimeError(f"deleting failed: {item}")
    return deleted


# --- which persons a run touched -------------------------------------------------------------


def people_since(es, settings: Settings) -> str | None:
    """What the people stage re-reads from: `CLOCK_MARGIN` before the last successful run ended (None
    on a fresh cluster: everything).

    That run's own people stage came after every contact and relationship it wrote (nothing after it
    writes either), so what is left is what later runs wrote: failed ones (runs never overlap: the
    lease) and this one. The margin covers clocks of different workers; it is counted from the end,
    not the start, so the run after a long one (a history load of hours) re-reads that run's last hour
    at most, not everything it wrote."""
    try:
        response = search(es, "the last run's end", index=settings.runtime_stats_index, size=1,
                          source=["run_date"], sort=[{"run_date": {"order": "desc"}}])
    except NotFoundError:
        return None
    hits = response["hits"]["hits"]
    if not hits:
        return None
    ended: datetime = parse_source_date(hits[0]["_source"]["run_date"])
    return format_utc(ended - CLOCK_MARGIN)


def addresses_written_since(es, settings: Settings, since: str | None) -> set[str]:
    """The addresses whose contact or relationship documents were written at or after `since`
    (None: every address)."""
    query = {"match_all": {}} if since is None else {"range": {"updated_at": {"gte": since}}}
    addresses: set[str] = set()
    indices = (settings.contacts_index, settings.relationships_index)
    refresh(es, *indices, missing_ok=True)
    for index in indices:
        if not es.indices.exists(index=index):
            continue
        for hit in scan(es, index, {"query": query, "_source": ["email_address"]}, settings.scan_page_size,
                        settings.scroll_keep_alive, f"addresses written in {index}"):
            addresses.add(hit["_source"]["email_address"])
    return addresses


def unlabelled_contacts(es, settings: Settings) -> int:
    """Contacts without a `person_id` (written before people existed)."""
    if not es.indices.exists(index=settings.contacts_index):
        return 0
    return count(es, settings.contacts_index, {"bool": {"must_not": [{"exists": {"field": "person_id"}}]}},
                 "contacts without a person")


# --- person_id on contacts and relationships -------------------------------------------------


def _scan_terms(es, settings: Settings, index: str, field: str, values: Iterable[str], source: Sequence[str],
                what: str) -> Iterator[dict[str, Any]]:
    if not es.indices.exists(index=index):
        return
    for batch in batched(sorted(set(values)), TERMS_PER_QUERY):
        yield from scan(es, index, {"query": {"terms": {field: list(batch)}}, "_source": list(source)},
                        settings.scan_page_size, settings.scroll_keep_alive, what)


def addresses_of_people(es, settings: Settings, person_ids: Iterable[str]) -> set[str]:
    """The addresses whose stored contacts carry these person ids."""
    return {hit["_source"]["email_address"] for hit in _scan_terms(
        es, settings, settings.contacts_index, "person_id", person_ids, ["email_address"], "contacts of people")}


def relabel(es, settings: Settings, people: People, addresses: Iterable[str] | None, updated_at: str) -> set[str]:
    """`person_id` rewritten on the contacts and relationships of these addresses (None: every
    address) whose person differs from the stored one; returns the addresses relabelled."""
    if not es.indices.exists(index=settings.contacts_index):
        return set()
    refresh(es, settings.contacts_index)
    if addresses is None:
        hits = scan(es, settings.contacts_index, {"query": {"match_all": {}}, "_source": ["email_address", "person_id"]},
                    settings.scan_page_size, settings.scroll_keep_alive, "every contact's person")
    else:
        hits = _scan_terms(es, settings, settings.contacts_index, "email_address", addresses,
                           ["email_address", "person_id"], "contacts' persons")
    moved = {hit["_source"]["email_address"] for hit in hits
             if hit["_source"].get("person_id") != people.person_of(hit["_source"]["email_address"])}
    for index in (settings.contacts_index, settings.relationships_index):
        actions = ({"_op_type": "update", "_index": index, "_id": hit["_id"],
                    "doc": {"person_id": people.person_of(hit["_source"]["email_address"]), "updated_at": updated_at}}
                   for hit in _scan_terms(es, settings, index, "email_address", moved, ["email_address"],
                                          f"documents to relabel in {index}"))
        bulk_write(es, actions, settings.bulk_chunk, f"person ids in {index}")
        refresh(es, index)
    if moved:
        log.info("Relabelled %d addresses with their person", len(moved))
    return moved


# --- person documents ------------------------------------------------------------------------


def refresh_people(es, settings: Settings, people: People, addresses: Iterable[str], updated_at: str
                   ) -> tuple[int, int]:
    """The person documents of these addresses' persons, now and before (a stored person document
    listing one of them), recomputed whole; a person left with no address loses its document.
    Returns (documents written, documents deleted)."""
    addresses = set(addresses)
    if not addresses or not es.indices.exists(index=settings.people_index):
        return 0, 0  # no run created the outputs yet: the first one builds every person
    refresh(es, settings.contacts_index, settings.relationships_index, settings.people_index, missing_ok=True)
    person_ids = {people.person_of(address) for address in addresses}
    person_ids |= {hit["_source"]["person_id"] for hit in _scan_terms(
        es, settings, settings.people_index, "addresses", addresses, ["person_id"], "people listing addresses")}
    written = deleted = 0
    for batch in batched(sorted(person_ids), settings.lookup_batch_size):
        documents, stale = _people_documents(es, settings, people, batch)
        stored = fetch_documents(es, settings.people_index, [document["person_id"] for document in documents])
        changed = [(document["person_id"], {**document, "updated_at": updated_at}) for document in documents
                   if {key: value for key, value in stored.get(document["person_id"], {}).items()
                       if key != "updated_at"} != document]
        written += bulk_write(es, index_actions(settings.people_index, changed), settings.bulk_chunk, "people")
        stored_stale = fetch_documents(es, settings.people_index, stale)
        deleted += _delete_quietly(es, [{"_op_type": "delete", "_index": settings.people_index, "_id": person_id}
                                        for person_id in stored_stale])
    refresh(es, settings.people_index)
    return written, deleted


def _people_documents(es, settings: Settings, people: People, person_ids: Sequence[str]
                      ) -> tuple[list[dict[str, Any]], list[str]]:
    """The documents of these persons from their stored contacts, and the persons left with none."""
    contacts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hit in _scan_terms(es, settings, settings.contacts_index, "person_id", person_ids,
                           ["email_address", "domain", "organization", "automated", "from_count", "to_count",
                            "cc_count", "total_count", "first_contact_date", "latest_contact_date", "accounts",
                            "accounts_count", "best_connected_accounts", "person_id"], "contacts of people"):
        contacts[hit["_source"]["person_id"]].append(hit["_source"])
    documents = []
    for person_id, members in contacts.items():
        canonical = people.canonical_of(members[0]["email_address"])
        if len(members) == 1:
            documents.append(person_document(canonical, members, people, None, None))
        else:
            addresses = frozenset(member["email_address"] for member in members)
            figures, strengths = _figures_of(es, settings, addresses)
            documents.append(person_document(canonical, members, people, figures, strengths))
    return documents, [person_id for person_id in person_ids if person_id not in contacts]


def _figures_of(es, settings: Settings, addresses: frozenset[str]) -> tuple[PersonFigures, dict[str, int]]:
    """A person's messages (every roles document naming one of their addresses) and each account's
    strongest relationship with one of them."""
    figures = PersonFigures(addresses)
    query = {"bool": {"should": [{"terms": {field: sorted(addresses)}}
                                 for field in ("from_addresses", "to_addresses", "cc_addresses")],
                      "minimum_should_match": 1}}
    for hit in scan(es, settings.roles_index, {"query": query, "_source": COMPILE_READ_FIELDS},
                    settings.scan_page_size, settings.scroll_keep_alive, "roles of a person"):
        figures.add_copy(hit["_source"])
    strengths: dict[str, int] = defaultdict(int)
    for hit in _scan_terms(es, settings, settings.relationships_index, "email_address", addresses,
                           ["account", "strength"], "relationships of a person"):
        account = hit["_source"]["account"]
        strengths[account] = max(strengths[account], int(hit["_source"].get("strength") or 0))
    return figures, dict(strengths)


# --- erasure --------------------------------------------------------------------------------


def addresses_of_persons_named(es, settings: Settings, people: People, addresses: Iterable[str]) -> set[str]:
    """Every known address of the persons of these addresses: their stored contacts, the alias
    entries of their groups, and the addresses themselves."""
    addresses = set(addresses)
    canonical = {people.canonical_of(address) for address in addresses}
    known = addresses_of_people(es, settings, {people.person_of(address) for address in addresses})
    known |= {address for pair in people.aliases for address in pair if people.canonical_of(address) in canonical}
    return known | addresses


def addresses_of_people_in(es, settings: Settings, domains: Sequence[str], organizations: Sequence[str]) -> set[str]:
    """The addresses the stored person documents list for persons with an address in these domains
    or organisations (whose person documents an erasure of them changes)."""
    should = [{"terms": {"domains": list(domains)}}] if domains else []
    should += [{"terms": {"organizations": list(organizations)}}] if organizations else []
    if not should or not es.indices.exists(index=settings.people_index):
        return set()
    refresh(es, settings.people_index)
    hits = scan(es, settings.people_index, {"query": {"bool": {"should": should, "minimum_should_match": 1}},
                                            "_source": ["addresses"]},
                settings.scan_page_size, settings.scroll_keep_alive, "people of erased domains")
    return {address for hit in hits for address in hit["_source"].get("addresses") or ()}


# --- suggestions -----------------------------------------------------------------------------


def alias_suggestions(es, settings: Settings, people: People) -> list[Suggestion]:
    """Likely aliases among the stored contacts (never applied on their own)."""
    if not es.indices.exists(index=settings.contacts_index):
        return []
    hits = scan(es, settings.contacts_index,
                {"query": {"match_all": {}}, "_source": ["email_address", "domain", "organization"]},
                settings.scan_page_size, settings.scroll_keep_alive, "contacts for suggestions")
    return suggest_aliases((hit["_source"] for hit in hits), people, display_names(es, settings))


def display_names(es, settings: Settings) -> dict[str, set[str]]:
    """Address -> the display names header entries gave it (roles documents that kept any)."""
    names: dict[str, set[str]] = defaultdict(set)
    hits = scan(es, settings.roles_index,
                {"query": {"exists": {"field": "display_names.email_address"}}, "_source": ["display_names"]},
                settings.scan_page_size, settings.scroll_keep_alive, "display names for suggestions")
    for hit in hits:
        for entry in hit["_source"].get("display_names") or ():
            names[entry["email_address"]].add(entry["name"])
    return names
