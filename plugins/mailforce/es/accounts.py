"""Which account ids the source index holds (one terms aggregation): the unknown-account check."""

from __future__ import annotations

from typing import Sequence

from mailforce.es.reads import search


def accounts_in_source(es, index: str, accounts: Sequence[str], field: str = "account") -> frozenset[str]:
    """The given account ids that have at least one document in `index` (size 0, one aggregation)."""
    if not accounts:
        return frozenset()
    names = sorted(set(accounts))
    if not es.indices.exists(index=index):
        return frozenset()
    response = search(
        es, "account check", index=index, size=0, query={"terms": {field: names}},
        aggs={"accounts": {"terms": {"field": field, "size": len(names)}}},
    )
    buckets = (response.get("aggregations") or {}).get("accounts", {}).get("buckets", [])
    return frozenset(str(bucket["key"]) for bucket in buckets if bucket.get("doc_count"))
