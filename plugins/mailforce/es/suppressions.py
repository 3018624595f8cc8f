"""The suppression index (erased addresses and domains) and the erasure audit index.

Every run and reconciliation reads the suppression index once, at extraction (one scan of a small
index); the erase DAG writes both (docs/ERASURE.md).
"""

from __future__ import annotations

from typing import Any, Iterable

from mailforce.core.erasure import ErasureRequest, Suppressions, suppression_documents, suppressions_of
from mailforce.core.ids import document_id
from mailforce.core.kinds import ERASABLE_KIND_NAMES
from mailforce.es.indices import create_index
from mailforce.es.reads import scan
from mailforce.es.writes import bulk_write, index_actions, refresh
from mailforce.settings import Settings

KEYWORD = {"type": "keyword"}
TEXT = {"type": "text"}
DATE = {"type": "date", "format": "strict_date_optional_time"}
INTEGER = {"type": "integer"}
SUPPRESSIONS_PROPERTIES = {
    "kind": KEYWORD,  # "address" or "domain"
    "value": KEYWORD,  # the normalised address, or the lower-case domain or organisation
    "reason": TEXT,
    "requested_by": KEYWORD,
    "requested_at": DATE,
    "erasure_id": KEYWORD,  # the audit record of the erasure that first recorded it
}
# Output kind -> documents, for every kind an erasure changes (`mailforce.core.kinds`)
OUTPUT_KINDS = ERASABLE_KIND_NAMES
PER_INDEX_COUNTS = {"properties": {kind: INTEGER for kind in OUTPUT_KINDS}}
AUDIT_PROPERTIES = {
    "erasure_id": KEYWORD,
    "requested_by": KEYWORD,
    "requested_at": DATE,
    "reason": TEXT,
    "addresses": KEYWORD,
    "domains": KEYWORD,
    "organizations": KEYWORD,  # written only when the erasure names organisations
    "people": KEYWORD,  # written only when the erasure names people (an address of each)
    "removed": PER_INDEX_COUNTS,  # output kind -> documents deleted
    "rewritten": PER_INDEX_COUNTS,  # output kind -> documents rewritten without the erased
    "indices": {"type": "object", "enabled": False},  # output kind -> its index name
    "removed_total": INTEGER,
    "affected_domains": INTEGER,
    "affected_accounts": INTEGER,
    "finished_at": DATE,
    "duration_seconds": {"type": "float"},
}


def erasure_mappings(settings: Settings) -> dict[str, dict[str, Any]]:
    return {settings.suppressions_index: SUPPRESSIONS_PROPERTIES, settings.erasure_audit_index: AUDIT_PROPERTIES}


def ensure_erasure_indices(es, settings: Settings, which: Iterable[str] | None = None) -> list[str]:
    """Create the suppression and audit indices (explicit, strict mappings) when missing; an audit
    index created before an output kind existed (the change feed, the organisations) gets that kind's
    counts added, and the `organizations` erased."""
    created = []
    for name, properties in erasure_mappings(settings).items():
        if which is not None and name not in which:
            continue
        if not es.indices.exists(index=name):
            if create_index(es, settings, name, properties, shards=1):
                created.append(name)
        elif name == settings.erasure_audit_index:
            _add_missing_counts(es, name)
    return created


def _add_missing_counts(es, index: str) -> None:
    """Per-kind count fields the stored audit mapping lacks (strict: a new kind's count would be refused)."""
    stored = next(iter(es.indices.get_mapping(index=index).body.values()), {}).get("mappings", {}).get("properties", {})
    missing = {field: PER_INDEX_COUNTS for field in ("removed", "rewritten")
               if set(OUTPUT_KINDS) - set(stored.get(field, {}).get("properties", {}))}
    for name in ("organizations", "people"):  # an audit index from before organisations or people
        if name not in stored:
            missing[name] = AUDIT_PROPERTIES[name]
    if missing:
        es.indices.put_mapping(index=index, properties=missing)


def read_suppressions(es, settings: Settings) -> Suppressions:
    """Every erased address, domain and organisation (one scan; a missing index means nothing was
    erased); an erased organisation covers every host whose organisation it is under the settings."""
    if not es.indices.exists(index=settings.suppressions_index):
        return Suppressions()
    hits = scan(es, settings.suppressions_index, {"query": {"match_all": {}}, "_source": ["kind", "value"]},
                settings.scan_page_size, settings.scroll_keep_alive, "suppressions")
    return suppressions_of((hit["_source"] for hit in hits), settings.organizations.organization_of)


def record_suppressions(es, settings: Settings, request: ErasureRequest) -> int:
    """One document per erased value, created once (kind + value is the id): returns how many are new."""
    ensure_erasure_indices(es, settings, [settings.suppressions_index])
    actions = ({**action, "_op_type": "create"}
               for action in index_actions(settings.suppressions_index, suppression_documents(request)))
    created = 0
    from elasticsearch import helpers

    for ok, item in helpers.streaming_bulk(es, actions, chunk_size=settings.bulk_chunk_size,
                                         max_chunk_bytes=settings.bulk_chunk_bytes, raise_on_error=False):
        status = next(iter(item.values())).get("status")
        if ok:
            created += 1
        elif status != 409:  # 409: recorded by an earlier erasure, kept as first recorded
            raise RuntimeError(f"recording suppressions failed: {item}")
    refresh(es, settings.suppressions_index)
    return created


def write_audit(es, settings: Settings, document: dict[str, Any]) -> str:
    ensure_erasure_indices(es, settings, [settings.erasure_audit_index])
    for name in ("organizations", "people"):  # an erasure naming none reads as before them
        if not document.get(name):
            document = {key: value for key, value in document.items() if key != name}
    identifier = document["erasure_id"] or document_id("erasure", document["requested_at"])
    bulk_write(es, index_actions(settings.erasure_audit_index, [(identifier, document)]), 1, "erasure audit")
    refresh(es, settings.erasure_audit_index)
    return identifier
