"""Upgrading in place: a cluster written by the previous version (nested mappings, no relationships,
contacts, timeline or ledger indices, runtime stats without `model_version`) is rebuilt by the next
normal run and then equals the oracle; backfills and reconciliations refuse to be the rebuilding run.
"""

from __future__ import annotations

import pytest
from elasticsearch import helpers

from mailforce.core.run_stats import MODEL_VERSION
from mailforce.es.indices import MigrationRequired, UNUSED_INDICES, index_mappings
from mailforce.es.watermark import read_watermark
from mailforce.stages.reconcile import reconcile_window
from mailforce.tools.synthetic import dirty_corpus
from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, read_source, run, utc

# The previous version's mappings, exactly as it created them (git show 94cdb73:plugins/mailforce/es/indices.py).
KEYWORD = {"type": "keyword"}
DATE = {"type": "date", "format": "strict_date_optional_time"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
FLOAT = {"type": "float"}
OLD_ROLE_ENTRY = {"email_address": KEYWORD, "domain": KEYWORD, "role": KEYWORD}
OLD_ACCOUNT_ENGAGEMENT_ENTRY = {"email_address": KEYWORD, "count": INTEGER,
                                "earliest_engagement_date": DATE, "latest_engagement_date": DATE}
OLD_DOMAIN_ENGAGEMENT_ENTRY = {"email_address": KEYWORD, "from_count": INTEGER, "to_count": INTEGER,
                               "cc_count": INTEGER, "total_count": INTEGER, "first_contact_date": DATE,
                               "latest_contact_date": DATE}


def _nested(properties):
    return {"type": "nested", "properties": properties}


OLD_ROLES = {"account": KEYWORD, "message_id": KEYWORD, "date": DATE, "domains": KEYWORD,
             "message_roles": _nested(OLD_ROLE_ENTRY), "role_count": INTEGER, "message_bucket": INTEGER,
             "run_id": KEYWORD, "updated_at": DATE}
OLD_ENGAGEMENTS = {"account": KEYWORD, "domain": KEYWORD, "emails_from": _nested(OLD_ACCOUNT_ENGAGEMENT_ENTRY),
                   "emails_to": _nested(OLD_ACCOUNT_ENGAGEMENT_ENTRY), "emails_cc": _nested(OLD_ACCOUNT_ENGAGEMENT_ENTRY),
                   "emails_from_count": INTEGER, "emails_to_count": INTEGER, "emails_cc_count": INTEGER,
                   "total_count": INTEGER, "earliest_engagement_date": DATE, "latest_engagement_date": DATE,
                   "updated_at": DATE}
OLD_ACCOUNT_STATS = {"account": KEYWORD, "emails_from_count": INTEGER, "emails_to_count": INTEGER,
                     "emails_cc_count": INTEGER, "total_emails_count": INTEGER, "updated_at": DATE}
OLD_DOMAINS = {"domain": KEYWORD, "first_contact_date": DATE, "latest_contact_date": DATE, "total_from": INTEGER,
               "total_to": INTEGER, "total_cc": INTEGER, "total_emails": INTEGER, "accounts": KEYWORD,
               "accounts_count": INTEGER, "addresses_count": INTEGER,
               "email_engagements": _nested(OLD_DOMAIN_ENGAGEMENT_ENTRY), "updated_at": DATE}
OLD_RUNTIME_STATS = {
    "run_id": KEYWORD, "run_date": DATE, "window_start": DATE, "window_start_inclusive": BOOLEAN, "window_end": DATE,
    "backfill": BOOLEAN, "backfilled_accounts": KEYWORD, "exclude_accounts": KEYWORD,
    "email_accounts_processed": INTEGER, "domains_processed": INTEGER, "emails_processed": INTEGER,
    "source_documents": INTEGER, "from_roles": INTEGER, "to_roles": INTEGER, "cc_roles": INTEGER,
    "skipped_no_date": INTEGER, "skipped_no_account": INTEGER, "invalid_addresses": INTEGER,
    "filtered_addresses": INTEGER, "undated_source_documents": INTEGER, "partitions": INTEGER,
    "documents_written": {"properties": {"message_roles": INTEGER, "accounts_engagements": INTEGER,
                                         "domains_engagements": INTEGER, "accounts_statistics": INTEGER}},
    "duration_seconds": FLOAT, "updated_at": DATE,
}
OLD_PARTIALS = {"run_id": KEYWORD, "domain": KEYWORD, "kind": KEYWORD, "account": KEYWORD, "shard": INTEGER,
                "document": {"type": "object", "enabled": False}, "updated_at": DATE}

OLD_WINDOW_END = "2001-01-01T00:00:00Z"  # mid-corpus: a watermark that must not be believed
CUT = "2001-06-30T12:00:00Z"


def _old_cluster(es, settings) -> None:
    """What the previous version left: its five output indices and its partials, with old-shape documents."""
    old = {settings.roles_index: OLD_ROLES, settings.engagements_index: OLD_ENGAGEMENTS,
           settings.account_stats_index: OLD_ACCOUNT_STATS, settings.domains_index: OLD_DOMAINS,
           settings.runtime_stats_index: OLD_RUNTIME_STATS, UNUSED_INDICES[0]: OLD_PARTIALS}
    for name, properties in old.items():
        es.indices.create(index=name, mappings={"dynamic": "strict", "properties": properties},
                          settings={"number_of_shards": 1, "number_of_replicas": 0})
    stale = "2000-06-01T00:00:00Z"
    actions = [
        {"_index": settings.roles_index, "_id": "old-role", "_source": {
            "account": "acct-0001", "message_id": "<old@example.com>", "date": stale, "domains": ["stale.example"],
            "message_roles": [{"email_address": "a@stale.example", "domain": "stale.example", "role": "to"}],
            "role_count": 1, "message_bucket": 3, "run_id": "old-run", "updated_at": stale}},
        {"_index": settings.engagements_index, "_id": "old-engagement", "_source": {
            "account": "acct-0001", "domain": "stale.example",
            "emails_from": [], "emails_cc": [],
            "emails_to": [{"email_address": "a@stale.example", "count": 7, "earliest_engagement_date": stale,
                           "latest_engagement_date": stale}],
            "emails_from_count": 0, "emails_to_count": 1, "emails_cc_count": 0, "total_count": 7,
            "earliest_engagement_date": stale, "latest_engagement_date": stale, "updated_at": stale}},
        {"_index": settings.account_stats_index, "_id": "old-stats", "_source": {
            "account": "acct-0001", "emails_from_count": 0, "emails_to_count": 99, "emails_cc_count": 0,
            "total_emails_count": 99, "updated_at": stale}},
        {"_index": settings.domains_index, "_id": "old-domain", "_source": {
            "domain": "stale.example", "first_contact_date": stale, "latest_contact_date": stale, "total_from": 0,
            "total_to": 7, "total_cc": 0, "total_emails": 7, "accounts": ["acct-0001"], "accounts_count": 1,
            "addresses_count": 1, "updated_at": stale,
            "email_engagements": [{"email_address": "a@stale.example", "from_count": 0, "to_count": 7, "cc_count": 0,
                                   "total_count": 7, "first_contact_date": stale, "latest_contact_date": stale}]}},
        {"_index": settings.runtime_stats_index, "_id": "old-run", "_source": {
            "run_id": "old-run", "run_date": OLD_WINDOW_END, "window_start": None, "window_start_inclusive": False,
            "window_end": OLD_WINDOW_END, "backfill": False, "backfilled_accounts": [], "exclude_accounts": [],
            "email_accounts_processed": 1, "domains_processed": 1, "emails_processed": 1, "source_documents": 1,
            "from_roles": 0, "to_roles": 1, "cc_roles": 0, "skipped_no_date": 0, "skipped_no_account": 0,
            "invalid_addresses": 0, "filtered_addresses": 0, "undated_source_documents": 0, "partitions": 1,
            "documents_written": {"message_roles": 1, "accounts_engagements": 1, "domains_engagements": 1,
                                  "accounts_statistics": 1},
            "duration_seconds": 1.5, "updated_at": OLD_WINDOW_END}},
        {"_index": UNUSED_INDICES[0], "_id": "old-partial", "_source": {
            "run_id": "old-run", "domain": "stale.example", "kind": "domain", "account": "acct-0001", "shard": 0,
            "document": {"anything": 1}, "updated_at": stale}},
    ]
    helpers.bulk(es, actions, refresh=True)


def _properties(es, name):
    return next(iter(es.indices.get_mapping(index=name).body.values()))["mappings"]["properties"]


def _nested_fields(properties, prefix=""):
    found = []
    for field, spec in properties.items():
        if spec.get("type") == "nested":
            found.append(prefix + field)
        found += _nested_fields(spec.get("properties", {}), prefix + field + ".")
    return found


def test_a_cluster_of_the_previous_version_is_rebuilt_by_the_next_run(es, settings):
    _old_cluster(es, settings)
    load_source(es, settings, dirty_corpus())
    source = read_source(es, settings)
    source_mapping = _properties(es, settings.source_index)

    first = run(es, settings, "upgrade", run_end=utc(CUT))

    assert first["model_version"] == MODEL_VERSION
    assert first["window_start"] is None  # the old record is history, not a watermark
    for name, properties in index_mappings(settings).items():
        mapping = _properties(es, name)
        assert not _nested_fields(mapping), name
        assert set(properties) <= set(mapping), name
    assert _properties(es, settings.source_index) == source_mapping
    es.indices.refresh(index=settings.runtime_stats_index)
    assert es.get(index=settings.runtime_stats_index, id="old-run")["_source"]["window_end"] == OLD_WINDOW_END
    assert es.count(index=UNUSED_INDICES[0])["count"] == 1  # left alone (logged as unused)
    assert_matches_oracle(es, settings, source, [Coverage(window_end=utc(CUT))])

    second = run(es, settings, "next")  # a normal incremental run from the new watermark

    assert second["window_start"] == CUT and second["emails_processed"] > 0
    assert read_watermark(es, settings) == FAR_FUTURE_RUN_END
    assert_matches_oracle(es, settings, source, [Coverage(window_end=FAR_FUTURE_RUN_END)])


@pytest.mark.parametrize("params", [{"backfilled_accounts": ["acct-0001"]}, {"from_date": "2001-01-01T00:00:00Z"}])
def test_a_backfill_or_reprocessing_refuses_to_rebuild_and_touches_nothing(es, settings, params):
    _old_cluster(es, settings)
    load_source(es, settings, dirty_corpus())
    before = {name: _properties(es, name) for name in index_mappings(settings) if es.indices.exists(index=name)}

    with pytest.raises(MigrationRequired, match="earlier version of mailforce.*next normal run"):
        run(es, settings, "backfill-first", **params)

    after = {name: _properties(es, name) for name in index_mappings(settings) if es.indices.exists(index=name)}
    assert after == before
    assert es.count(index=settings.engagements_index)["count"] == 1


def test_a_reconciliation_refuses_to_rebuild(es, settings):
    _old_cluster(es, settings)
    load_source(es, settings, dirty_corpus())
    with pytest.raises(MigrationRequired):
        reconcile_window(es, settings)
    assert _nested_fields(_properties(es, settings.roles_index)) == ["message_roles"]


def test_a_run_that_dies_after_the_rebuild_is_completed_by_the_next(es, settings):
    from driver import run_once
    from mailforce.core.run_params import RunRequest

    _old_cluster(es, settings)
    load_source(es, settings, dirty_corpus())
    source = read_source(es, settings)
    with pytest.raises(RuntimeError, match="simulated"):
        run_once(es, settings, RunRequest(), FAR_FUTURE_RUN_END, "dies", stop_after_partitions=1)
    assert read_watermark(es, settings) is None

    stats = run(es, settings, "after")

    assert stats["window_start"] is None
    assert_matches_oracle(es, settings, source, [Coverage(window_end=FAR_FUTURE_RUN_END)])


def test_the_upgrading_run_needs_only_the_documented_privileges(es, es_url, settings):
    """The role docs/CONFIGURATION.md lists covers the upgrading run; `delete_index` is what it adds."""
    from esproxy import EsProxy, missing_privileges, required_privileges
    from test_real_clusters import product_client, documented_role

    _old_cluster(es, settings)
    load_source(es, settings, dirty_corpus())
    with EsProxy(es_url, flavour="es9") as proxy:
        client = product_client(proxy)
        run(client, settings, "upgrade")
        client.close()
        required = required_privileges(proxy.records)
    # The one look outside the role: whether the previous version's partials index is still there (to
    # log that it is unused), made once, by the upgrading run; without the grant it is a 403, tolerated.
    assert missing_privileges(required, documented_role()) == {UNUSED_INDICES[0]: {"view_index_metadata"}}
    assert "delete_index" in required[settings.roles_index]
    assert "delete_index" not in required.get(settings.runtime_stats_index, set())
    assert "delete_index" not in required.get(settings.source_index, set())
