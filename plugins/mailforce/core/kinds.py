"""Every output kind, declared once: its index setting, mapping, natural key, asset, noun and role.

A kind's record says everything the rest of the product needs to handle it: which setting names its
index (`Settings.<index_setting>`), the explicit mapping its index is created with, the natural key
its document `_id` derives from (never counts or dates), the noun its log lines use, its key in the
runtime stats' `documents_written`, and what produces it: the compile (rolled up per domain, and
recomputed by the erasure), or another stage. Code that handles outputs loops over `OUTPUT_KINDS`
(or `COMPILED_KINDS`); adding a kind is one record here, its index setting in `settings.py`, and its
rollup code (`core/rollups.py`, `DomainDocuments`).

Pure data and plain functions: no Elasticsearch, no Airflow (tests/test_layout.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Callable, Mapping

KEYWORD = {"type": "keyword"}
DATE = {"type": "date", "format": "strict_date_optional_time"}
INTEGER = {"type": "integer"}
LONG = {"type": "long"}
BOOLEAN = {"type": "boolean"}
FLOAT = {"type": "float"}

ROLE_ENTRY = {"email_address": KEYWORD, "domain": KEYWORD, "role": KEYWORD}
ACCOUNT_ENGAGEMENT_ENTRY = {
    "email_address": KEYWORD,
    "count": INTEGER,
    "earliest_engagement_date": DATE,
    "latest_engagement_date": DATE,
}
DOMAIN_ENGAGEMENT_ENTRY = {
    "email_address": KEYWORD,
    "from_count": INTEGER,
    "to_count": INTEGER,
    "cc_count": INTEGER,
    "total_count": INTEGER,
    "first_contact_date": DATE,
    "latest_contact_date": DATE,
}


def _nested(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "nested", "properties": properties}


ROLES_PROPERTIES = {
    "account": KEYWORD,
    "message_id": KEYWORD,
    "date": DATE,
    "key_date": DATE,  # earliest date of the message id across accounts (the cross-mailbox date)
    "domains": KEYWORD,
    "from_addresses": KEYWORD,
    "to_addresses": KEYWORD,
    "cc_addresses": KEYWORD,
    "automated_addresses": KEYWORD,
    # object, not nested: a message's role list must never reach index.mapping.nested_objects.limit
    "message_roles": {"type": "object", "properties": ROLE_ENTRY},
    "role_count": INTEGER,
    "message_bucket": INTEGER,
    # a copy added to its mailbox's figures only: other mailboxes' copies had counted the message
    "counted_elsewhere": BOOLEAN,
    "run_id": KEYWORD,
    "updated_at": DATE,
}
# Lists that may hold tens of thousands of entries are stored, not indexed: a nested mapping would
# hit index.mapping.nested_objects.limit (10,000 per document) on a large domain, and the per-address
# questions are answered by the flat relationships and contacts indices.
STORED_LIST = {"type": "object", "enabled": False}
CONNECTION_ENTRY = {"properties": {"account": KEYWORD, "strength": INTEGER, "total_count": INTEGER}}

ENGAGEMENTS_PROPERTIES = {
    "account": KEYWORD,
    "domain": KEYWORD,
    "organization": KEYWORD,
    "emails_from": STORED_LIST,
    "emails_to": STORED_LIST,
    "emails_cc": STORED_LIST,
    "emails_from_count": INTEGER,
    "emails_to_count": INTEGER,
    "emails_cc_count": INTEGER,
    "total_count": INTEGER,
    "earliest_engagement_date": DATE,
    "latest_engagement_date": DATE,
    "strength_max": INTEGER,
    "updated_at": DATE,
}
ACCOUNT_STATS_PROPERTIES = {
    "account": KEYWORD,
    "emails_from_count": INTEGER,
    "emails_to_count": INTEGER,
    "emails_cc_count": INTEGER,
    "total_emails_count": INTEGER,
    "updated_at": DATE,
}
# The figures of a domain across mailboxes, which an organisation has too, over its hosts.
CONTACT_FIGURES = {
    "first_contact_date": DATE,
    "latest_contact_date": DATE,
    "total_from": INTEGER,
    "total_to": INTEGER,
    "total_cc": INTEGER,
    "total_emails": INTEGER,
    "accounts": KEYWORD,
    "accounts_count": INTEGER,
    "addresses_count": INTEGER,
    # At most `domain_top_addresses` entries (default 100): flat objects, so Kibana can chart them.
    "email_engagements": {"properties": DOMAIN_ENGAGEMENT_ENTRY},
    "email_engagements_complete": BOOLEAN,
    "best_connected_accounts": CONNECTION_ENTRY,  # organisations: companies only
}
DOMAINS_PROPERTIES = {
    "domain": KEYWORD,
    "organization": KEYWORD,
    "organization_kind": KEYWORD,
    **CONTACT_FIGURES,
    "updated_at": DATE,
}
RELATIONSHIPS_PROPERTIES = {
    "account": KEYWORD,
    "email_address": KEYWORD,
    "domain": KEYWORD,
    "organization": KEYWORD,
    "organization_kind": KEYWORD,
    "from_count": INTEGER,
    "to_count": INTEGER,
    "cc_count": INTEGER,
    "total_count": INTEGER,
    "first_engagement_date": DATE,
    "latest_engagement_date": DATE,
    "automated": BOOLEAN,
    "two_way": BOOLEAN,
    "strength": INTEGER,
    "updated_at": DATE,
}
# The figures of one outside address across mailboxes, which a person has too, over their addresses.
ADDRESS_FIGURES = {
    "from_count": INTEGER,
    "to_count": INTEGER,
    "cc_count": INTEGER,
    "total_count": INTEGER,
    "first_contact_date": DATE,
    "latest_contact_date": DATE,
    "accounts": KEYWORD,
    "accounts_count": INTEGER,
    "automated": BOOLEAN,
    "best_connected_accounts": CONNECTION_ENTRY,
}
CONTACTS_PROPERTIES = {
    "email_address": KEYWORD,
    "domain": KEYWORD,
    "organization": KEYWORD,
    "organization_kind": KEYWORD,
    **ADDRESS_FIGURES,
    "updated_at": DATE,
}
TIMELINE_PROPERTIES = {
    "scope": KEYWORD,  # "domain" or "organization" (across accounts), or "account"
    "account": KEYWORD,
    "domain": KEYWORD,
    "organization": KEYWORD,
    "month": DATE,
    "messages": INTEGER,
    "from_count": INTEGER,
    "to_count": INTEGER,
    "cc_count": INTEGER,
    "updated_at": DATE,
}
# Conversations (docs/SEMANTICS.md, "Conversations"): who wrote a message and to whom, the domain
# filters aside; each mailbox's own addresses with their evidence; direct exchange and its audience;
# why an address is flagged automated.
ROLES_PROPERTIES.update({"sender_addresses": KEYWORD, "recipient_addresses": KEYWORD, "participants": KEYWORD,
                         "audience": INTEGER})
# The display names the header entries carried for the message's addresses (people's suggestions)
ROLES_PROPERTIES["display_names"] = {"properties": {"email_address": KEYWORD, "name": KEYWORD}}
ACCOUNT_STATS_PROPERTIES.update({
    "owner_addresses": KEYWORD,
    "owner_source": KEYWORD,  # "setting", "inferred" or "none"
    "owner_run_id": KEYWORD,  # the run that last changed the owners (settled once that run succeeded)
    # the run that wrote the evidence ("" after an erasure): a later run adds its new mail to it when that run succeeded
    "owner_evidence_run_id": KEYWORD,
    "owner_evidence": {"properties": {"messages": INTEGER,
                                      "candidates": {"properties": {"email_address": KEYWORD, "messages": INTEGER}}}},
})
RELATIONSHIPS_PROPERTIES.update({
    "owner": BOOLEAN,  # the address is one of the mailbox's own
    "direct_from_count": INTEGER, "direct_to_count": INTEGER, "direct_count": INTEGER,
    "direct_weight": LONG,  # audience-weighted direct messages, in millionths of a message
    "latest_direct_date": DATE,
    "automated_reason": KEYWORD,
})
CONTACTS_PROPERTIES.update({"automated_reason": KEYWORD, "flagged_by_headers": BOOLEAN,
                            "broadcast_messages": INTEGER, "answered_count": INTEGER})

# One organisation (docs/SEMANTICS.md, "Organisations"): the domain document's figures over its hosts.
ORGANIZATIONS_PROPERTIES = {
    "organization": KEYWORD,
    "kind": KEYWORD,  # "company" or "personal" (a free or personal mail provider)
    "domains": KEYWORD,
    "domains_count": INTEGER,
    **CONTACT_FIGURES,
    # Every account's {account, strength, total_count} with the organisation: what the add path and the
    # rescoring rank from (stored, not indexed: one entry per mailbox)
    "account_connections": STORED_LIST,
    "updated_at": DATE,
}
# One person (docs/SEMANTICS.md, "People"): the contact figures across their addresses.
PEOPLE_PROPERTIES = {
    "person_id": KEYWORD,
    "canonical_address": KEYWORD,
    "addresses": KEYWORD,
    "addresses_count": INTEGER,
    "domains": KEYWORD,
    "organizations": KEYWORD,
    **ADDRESS_FIGURES,  # automated: every address of theirs is
    # why each address is theirs: {email_address, joined_by, provider_rule} (stored, not indexed)
    "explanation": STORED_LIST,
    "updated_at": DATE,
}
RELATIONSHIPS_PROPERTIES["person_id"] = KEYWORD
CONTACTS_PROPERTIES["person_id"] = KEYWORD
# The change feed (`mailforce.core.changes`): one document per crossing of a strength band.
CHANGES_PROPERTIES = {
    "account": KEYWORD,
    "email_address": KEYWORD,
    "domain": KEYWORD,
    "organization": KEYWORD,  # carried over from the relationship when it has one
    "person_id": KEYWORD,  # likewise
    "scoring_date": DATE,
    "from_band": KEYWORD,
    "to_band": KEYWORD,
    "direction": KEYWORD,
    "went_cold": BOOLEAN,
    "cause": KEYWORD,
    "strength_before": INTEGER,
    "strength": INTEGER,
    "from_count": INTEGER,
    "to_count": INTEGER,
    "cc_count": INTEGER,
    "total_count": INTEGER,
    "first_engagement_date": DATE,
    "latest_engagement_date": DATE,
    "two_way": BOOLEAN,
    "automated": BOOLEAN,
    "updated_at": DATE,
}
RUNTIME_STATS_PROPERTIES = {
    "model_version": INTEGER,
    "run_id": KEYWORD,
    "run_date": DATE,
    "window_start": DATE,
    "window_start_inclusive": BOOLEAN,
    "window_end": DATE,
    "backfill": BOOLEAN,
    "backfilled_accounts": KEYWORD,
    "exclude_accounts": KEYWORD,
    "email_accounts_processed": INTEGER,
    "domains_processed": INTEGER,
    "emails_processed": INTEGER,
    "counted_messages": INTEGER,
    "source_documents": INTEGER,
    "from_roles": INTEGER,
    "to_roles": INTEGER,
    "cc_roles": INTEGER,
    "skipped_no_date": INTEGER,
    "skipped_no_account": INTEGER,
    "invalid_addresses": INTEGER,
    "filtered_addresses": INTEGER,
    "undated_source_documents": INTEGER,
    "late_messages": INTEGER,
    "late_accounts": KEYWORD,
    "late_days": KEYWORD,
    "late_days_count": INTEGER,
    "future_dated_messages": INTEGER,
    "future_dated_max_date": DATE,
    "unchanged_messages": INTEGER,
    "read_from": DATE,
    "reconciliation": BOOLEAN,
    "interval_backfill": BOOLEAN,
    "partitions": INTEGER,
    "documents_written": {"properties": {}},  # each kind's stats_key: filled in below the kinds
    "scoring_date": DATE,  # the calendar date relationship strengths are computed at
    "public_suffix_list_version": KEYWORD,  # the list organisations were computed with
    "organization_overrides": KEYWORD,  # the setting's host=organization entries in force
    "organizations_fingerprint": KEYWORD,  # of both: a change regroups the hosts it moves
    "organizations_changed": BOOLEAN,  # this run applied a change of either (the audit trail) ...
    "previous_organization_overrides": KEYWORD,  # ... from these overrides
    "previous_public_suffix_list_version": KEYWORD,  # ... and this list version
    "relationships_rescored": INTEGER,
    "duration_seconds": FLOAT,
    "updated_at": DATE,
}


NaturalKey = Callable[[Mapping[str, Any]], "tuple[str, ...]"]


def _fields(*names: str) -> NaturalKey:
    if len(names) == 1:
        name, = names
        return lambda document: (document[name],)
    return itemgetter(*names)  # a tuple of the values, as for one name above


def _timeline_key(document: Mapping[str, Any]) -> tuple[str, ...]:
    """A month of one account with a domain, of the domain across accounts (no `account`), or of an
    organisation across accounts (`scope: "organization"`)."""
    if document.get("account"):
        return ("account", document["account"], document["domain"], document["month"])
    if document.get("scope") == "organization":
        return ("organization", document["organization"], document["month"])
    return ("domain", document["domain"], document["month"])


@dataclass(frozen=True)
class OutputKind:
    """One output index's declaration (see the module docstring)."""

    name: str  # the kind's key everywhere: XCom counts, assets, audit records, `DomainDocuments` fields
    index_setting: str  # the `Settings` field naming its index
    properties: Mapping[str, Any]  # the explicit mapping its index is created with
    noun: str  # what a log line calls one document
    stats_key: str | None  # its key in the runtime stats' `documents_written` (None: not counted there)
    natural_key: NaturalKey | None = None  # fields -> the tuple its `_id` derives from (None: not rolled up)
    compiled: bool = False  # rolled up per domain by the compile, recomputed by the erasure
    erasable: bool = True  # an erasure removes the erased values from it (counted in its audit record)

    def index(self, settings: Any) -> str:
        """The index holding this kind's documents under `settings`."""
        return getattr(settings, self.index_setting)


ROLES = OutputKind("roles", "roles_index", ROLES_PROPERTIES, "roles document", "message_roles",
                   _fields("account", "message_id"))
ENGAGEMENTS = OutputKind("engagements", "engagements_index", ENGAGEMENTS_PROPERTIES, "account engagement",
                         "accounts_engagements", _fields("account", "domain"), compiled=True)
ACCOUNT_STATS = OutputKind("account_stats", "account_stats_index", ACCOUNT_STATS_PROPERTIES, "account statistics",
                           "accounts_statistics", _fields("account"))
DOMAINS = OutputKind("domains", "domains_index", DOMAINS_PROPERTIES, "domain document", "domains_engagements",
                     _fields("domain"), compiled=True)
RELATIONSHIPS = OutputKind("relationships", "relationships_index", RELATIONSHIPS_PROPERTIES, "relationship",
                           "relationships", _fields("account", "email_address"), compiled=True)
CONTACTS = OutputKind("contacts", "contacts_index", CONTACTS_PROPERTIES, "contact", "contacts",
                      _fields("email_address"), compiled=True)
TIMELINE = OutputKind("timeline", "timeline_index", TIMELINE_PROPERTIES, "timeline month", "engagement_timeline",
                      _timeline_key, compiled=True)
ORGANIZATIONS = OutputKind("organizations", "organizations_index", ORGANIZATIONS_PROPERTIES, "organization document",
                           "organizations", _fields("organization"), compiled=True)
RUNTIME_STATS = OutputKind("runtime_stats", "runtime_stats_index", RUNTIME_STATS_PROPERTIES, "runtime-stats record",
                           None, _fields("run_id"), erasable=False)
CHANGES = OutputKind("changes", "changes_index", CHANGES_PROPERTIES, "relationship change", "relationship_changes",
                     _fields("account", "email_address", "scoring_date", "from_band", "to_band"))
# Written by the people stage after the compile (and by the erasure and the alias changes), not per domain.
PEOPLE = OutputKind("people", "people_index", PEOPLE_PROPERTIES, "person document", "people",
                    _fields("canonical_address"))

# In the order of the seed's outputs, then the change feed, the organisations and the people (and of
# `Settings.output_indices`).
OUTPUT_KINDS: tuple[OutputKind, ...] = (ROLES, ENGAGEMENTS, ACCOUNT_STATS, DOMAINS, RELATIONSHIPS, CONTACTS,
                                        TIMELINE, RUNTIME_STATS, CHANGES, ORGANIZATIONS, PEOPLE)
# What the compile writes, in the order it writes them (`DomainDocuments`).
COMPILED_KINDS: tuple[OutputKind, ...] = (ENGAGEMENTS, RELATIONSHIPS, CONTACTS, TIMELINE, DOMAINS, ORGANIZATIONS)
COMPILED_KIND_NAMES: tuple[str, ...] = tuple(kind.name for kind in COMPILED_KINDS)
ERASABLE_KIND_NAMES: tuple[str, ...] = tuple(kind.name for kind in OUTPUT_KINDS if kind.erasable)
KIND_BY_NAME: Mapping[str, OutputKind] = {kind.name: kind for kind in OUTPUT_KINDS}
RUNTIME_STATS_PROPERTIES["documents_written"]["properties"].update(
    {kind.stats_key: INTEGER for kind in OUTPUT_KINDS if kind.stats_key})


def natural_key(kind: str, document: Mapping[str, Any]) -> tuple[str, ...]:
    """The natural key of an output document of a kind; its `_id` is derived from this only."""
    key = KIND_BY_NAME[kind].natural_key
    if key is None:
        raise ValueError(f"unknown output kind {kind!r}")
    return key(document)
