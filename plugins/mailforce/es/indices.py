"""Output index mappings, and creating what is missing before anything is written.

Every output index is created with an explicit, strict mapping before the first write: a field that
is not declared is refused rather than guessed by dynamic mapping.
"""

from __future__ import annotations

import logging
from typing import Any

from mailforce.settings import Settings

log = logging.getLogger(__name__)

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
DOMAINS_PROPERTIES = {
    "domain": KEYWORD,
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
    "best_connected_accounts": CONNECTION_ENTRY,
    "updated_at": DATE,
}
RELATIONSHIPS_PROPERTIES = {
    "account": KEYWORD,
    "email_address": KEYWORD,
    "domain": KEYWORD,
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
CONTACTS_PROPERTIES = {
    "email_address": KEYWORD,
    "domain": KEYWORD,
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
    "updated_at": DATE,
}
TIMELINE_PROPERTIES = {
    "scope": KEYWORD,  # "domain" (across accounts) or "account"
    "account": KEYWORD,
    "domain": KEYWORD,
    "month": DATE,
    "messages": INTEGER,
    "from_count": INTEGER,
    "to_count": INTEGER,
    "cc_count": INTEGER,
    "updated_at": DATE,
}
RUNTIME_STATS_PROPERTIES = {
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
    "future_dated_messages": INTEGER,
    "future_dated_max_date": DATE,
    "unchanged_messages": INTEGER,
    "read_from": DATE,
    "reconciliation": BOOLEAN,
    "interval_backfill": BOOLEAN,
    "partitions": INTEGER,
    "documents_written": {
        "properties": {
            "message_roles": INTEGER,
            "accounts_engagements": INTEGER,
            "domains_engagements": INTEGER,
            "accounts_statistics": INTEGER,
            "relationships": INTEGER,
            "contacts": INTEGER,
            "engagement_timeline": INTEGER,
        }
    },
    "scoring_date": DATE,  # the calendar date relationship strengths are computed at
    "relationships_rescored": INTEGER,
    "duration_seconds": FLOAT,
    "updated_at": DATE,
}


def index_mappings(settings: Settings) -> dict[str, dict[str, Any]]:
    """Index name -> its mapping, for the eight output indices."""
    return {
        settings.roles_index: ROLES_PROPERTIES,
        settings.engagements_index: ENGAGEMENTS_PROPERTIES,
        settings.account_stats_index: ACCOUNT_STATS_PROPERTIES,
        settings.domains_index: DOMAINS_PROPERTIES,
        settings.relationships_index: RELATIONSHIPS_PROPERTIES,
        settings.contacts_index: CONTACTS_PROPERTIES,
        settings.timeline_index: TIMELINE_PROPERTIES,
        settings.runtime_stats_index: RUNTIME_STATS_PROPERTIES,
    }


def ensure_output_indices(es, settings: Settings) -> list[str]:
    """Create each missing output index with its explicit mapping; returns the ones created.

    An existing index whose mapping lacks a field we write is reported, not silently extended.
    """
    created = []
    for name, properties in index_mappings(settings).items():
        if es.indices.exists(index=name):
            _check_mapping(es, name, properties)
            continue
        body = {
            "settings": {"number_of_shards": settings.index_shards, "number_of_replicas": settings.index_replicas},
            "mappings": {"dynamic": "strict", "properties": properties},
        }
        try:
            es.indices.create(index=name, **body)
            created.append(name)
            log.info("Created index %s with an explicit mapping", name)
        except Exception as error:  # another task created it first: fine if it is there now
            if not es.indices.exists(index=name):
                raise
            log.info("Index %s appeared meanwhile (%s)", name, type(error).__name__)
    return created


def _check_mapping(es, name: str, properties: dict[str, Any]) -> None:
    response = es.indices.get_mapping(index=name)
    for index_body in response.body.values():
        existing = index_body.get("mappings", {}).get("properties", {})
        missing = sorted(set(properties) - set(existing))
        conflicting = sorted(
            field
            for field, spec in properties.items()
            if field in existing and existing[field].get("type", "object") != spec.get("type", "object")
        )
        if conflicting:
            raise RuntimeError(
                f"index {name} has a mapping that conflicts with this version for {conflicting}; "
                "reindex it or point the settings at a new index name"
            )
        if missing:
            es.indices.put_mapping(index=name, properties={field: properties[field] for field in missing})
            log.info("Added fields %s to the mapping of %s", missing, name)


class SourceIndexMissing(RuntimeError):
    """The configured source index does not exist: a typo must not look like a quiet mailbox."""


def prepare_indices(es, settings: Settings) -> list[str]:
    """Check the source exists, and create missing output indices before anything is written.

    A run over a missing source would record an empty window and move the watermark past mail that
    appears there later, so it fails instead.
    """
    if not es.indices.exists(index=settings.source_index):
        raise SourceIndexMissing(
            f"source index {settings.source_index!r} does not exist; check the setting 'source_index' "
            "(MAILFORCE_SOURCE_INDEX) or load mail first"
        )
    return ensure_output_indices(es, settings)
