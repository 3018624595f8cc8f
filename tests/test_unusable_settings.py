"""Settings that cannot work fail the first task in one sentence naming the setting and the fix,
before anything is written (issue 20 item 5): an arrival field the source does not map as a date, an
output index with a foreign mapping, an internal or allowed domain that is not a domain.

The first tasks are called as the DAGs call them (`mailforce.dag_tasks`, a plain dict standing in
for the Airflow context, the connection from the environment) against the real engine over HTTP."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mailforce import dag_tasks
from mailforce.core.setting_checks import ArrivalFieldUnusable, ForeignMapping
from mailforce.core.kinds import DOMAINS_PROPERTIES
from mailforce.es.watermark import read_watermark
from mailforce.settings import Settings
from mailforce.stages.erase import erase
from mailforce.tools.loader import SOURCE_MAPPING
from mailforce.tools.synthetic import dirty_corpus
from support import load_source, raw_outputs, run

RUN_END = datetime(2030, 1, 1, tzinfo=timezone.utc)
WITHOUT_ARRIVAL = {**SOURCE_MAPPING, "properties": {name: spec for name, spec in SOURCE_MAPPING["properties"].items()
                                                    if name != "indexed_at"}}


@pytest.fixture
def first_task(es_url, monkeypatch):
    """Calls a DAG's first task with the given settings as MAILFORCE_* variables; returns the
    AirflowFailException's sentence."""
    host, port = es_url.rsplit("//", 1)[1].split(":")
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", json.dumps(
        {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http", "extra": {"engine": "osmem"}}))

    def call(task: str = "fetch_watermark", **environment: str) -> str:
        for name, value in environment.items():
            monkeypatch.setenv(f"MAILFORCE_{name.upper()}", value)
        context = {"dag_run": SimpleNamespace(dag_id=f"mailforce_{task}", conf={}, data_interval_end=RUN_END,
                                              data_interval_start=None, run_type="manual"),
                   "params": {}, "run_id": f"manual__{task}", "ti": None}
        with pytest.raises(AirflowFailException) as failed:
            getattr(dag_tasks, task)(context)
        return str(failed.value)

    return call


def cluster_state(es, settings: Settings) -> tuple[set[str], dict, datetime | None]:
    """(every index, every output document as stored, the watermark): what 'nothing written' compares."""
    return set(es.indices.get(index="*").body), raw_outputs(es, settings), read_watermark(es, settings)


def stamped(documents: list[dict], field: str = "indexed_at") -> list[dict]:
    return [{**document, "_source": {**document["_source"], field: "2029-12-31T23:00:00Z"}} for document in documents]


def load_counted_source(es, mapping: dict, *, index: str = "search-shinobi-email") -> list[dict]:
    """A source index created with `mapping`, its mail counted by one run of a valid configuration."""
    documents = stamped(dirty_corpus()[:60])
    es.indices.create(index=index, mappings=mapping)
    load_source(es, Settings(source_index=index), documents)
    run(es, Settings(source_index=index), "before", RUN_END)
    return documents


def test_an_arrival_field_the_source_does_not_map_fails_the_first_task_and_writes_nothing(es, first_task):
    load_counted_source(es, WITHOUT_ARRIVAL)  # dynamic: false, so indexed_at stays in _source only
    before = cluster_state(es, Settings())
    assert before[2] is not None

    sentence = first_task(arrival_field="indexed_at")

    assert sentence.startswith("Setting that cannot work, nothing was written: setting 'arrival_field' names "
                               "'indexed_at', which the source index 'search-shinobi-email' does not map")
    assert "PUT search-shinobi-email/_mapping" in sentence and "clear 'arrival_field'" in sentence
    assert sentence.count(". ") == 0 and "\n" not in sentence  # one sentence
    assert cluster_state(es, Settings()) == before  # no output, no runtime stats, no lease; same watermark
    with pytest.raises(ArrivalFieldUnusable) as caught:  # the stage, as tests and the driver call it
        run(es, Settings(arrival_field="indexed_at"), "again", RUN_END)
    error = caught.value
    assert (error.setting, error.index, error.field, error.found, error.expected) == (
        "arrival_field", "search-shinobi-email", "indexed_at", "unmapped", "date")
    assert cluster_state(es, Settings()) == before


def test_an_arrival_field_mapped_as_another_type_fails_the_first_task(es, first_task):
    mapping = {**SOURCE_MAPPING, "properties": {**SOURCE_MAPPING["properties"], "indexed_at": {"type": "keyword"}}}
    load_counted_source(es, mapping)
    before = cluster_state(es, Settings())

    sentence = first_task(arrival_field="indexed_at")

    assert "setting 'arrival_field' names 'indexed_at', which the source index 'search-shinobi-email' maps as " \
           "keyword, not as a date" in sentence
    assert "set 'arrival_field' (MAILFORCE_ARRIVAL_FIELD) to a field the source maps as a date, or clear it" in sentence
    assert cluster_state(es, Settings()) == before


def test_an_arrival_field_mapped_as_a_date_passes_also_when_older_indices_lack_it(es, settings, caplog):
    """A source alias over a stamped index and an older one created before the stamp: accepted with a
    WARNING naming the older index (its documents fall back to their date)."""
    older, newer = dirty_corpus()[:40], stamped(dirty_corpus()[40:80])
    es.indices.create(index="mail-2028", mappings=WITHOUT_ARRIVAL)
    es.indices.create(index="mail-2029", mappings=SOURCE_MAPPING)
    load_source(es, replace(settings, source_index="mail-2028"), older)
    load_source(es, replace(settings, source_index="mail-2029"), newer)
    es.indices.update_aliases(actions=[{"add": {"index": name, "alias": "mail"}} for name in ("mail-2028", "mail-2029")])

    with caplog.at_level(logging.WARNING, logger="mailforce.es.preflight"):
        stats = run(es, replace(settings, source_index="mail", arrival_field="indexed_at"), "both", RUN_END)
    assert stats["source_documents"] > len(newer)  # the older index's mail is read too, on its date
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1 and "'indexed_at' is a date in part of source 'mail' but not mapped in ['mail-2028']" \
        in warnings[0]


def test_an_output_index_with_a_field_of_another_type_fails_the_first_task_of_each_dag(es, first_task):
    load_counted_source(es, SOURCE_MAPPING)
    es.indices.delete(index="search-domains-engagements")  # someone else's index took the name
    es.indices.create(index="search-domains-engagements",
                      mappings={"properties": {**DOMAINS_PROPERTIES, "total_emails": {"type": "keyword"}}})
    before = cluster_state(es, Settings())

    for task in ("fetch_watermark", "reconcile_window"):
        sentence = first_task(task)
        assert sentence == (
            "Setting that cannot work, nothing was written: output index search-domains-engagements (setting "
            "'domains_index') maps 'total_emails' as keyword, but mailforce writes it as integer: set 'domains_index' "
            "(MAILFORCE_DOMAINS_INDEX) to another index name, which mailforce creates with its own mapping, or "
            "delete search-domains-engagements if nothing else uses it"), task
        assert cluster_state(es, Settings()) == before, task
    with pytest.raises(ForeignMapping) as caught:  # the erasure, before it records any suppression
        erase(es, Settings(), {"domains": ["acme.com"], "reason": "test", "requested_by": "dpo"})
    error = caught.value
    assert (error.setting, error.index, error.field, error.found, error.expected) == (
        "domains_index", "search-domains-engagements", "total_emails", "keyword", "integer")
    assert cluster_state(es, Settings()) == before and not es.indices.exists(index="search-mailforce-suppressions")


def test_an_output_index_named_by_an_alias_is_checked_through_it(es, settings):
    """The mappings of every output index are read in one request; a name that is an alias answers
    under its index's name, and is still checked (here: another tool's field type behind it)."""
    from mailforce.es.indices import check_output_mappings, stored_mappings

    load_source(es, settings, dirty_corpus()[:20])
    es.indices.create(index="domains-2029", mappings={"properties": {**DOMAINS_PROPERTIES, "total_emails": {"type": "keyword"}}})
    es.indices.put_alias(index="domains-2029", name=settings.domains_index)
    stored = stored_mappings(es, [settings.contacts_index, settings.domains_index])
    assert list(stored) == [settings.domains_index] and list(stored[settings.domains_index]) == ["domains-2029"]
    with pytest.raises(ForeignMapping) as caught:
        check_output_mappings(es, settings)
    assert (caught.value.index, caught.value.field, caught.value.found) == ("domains-2029", "total_emails", "keyword")

    es.indices.delete(index="domains-2029")
    es.indices.create(index="domains-2030", mappings={"properties": DOMAINS_PROPERTIES})
    es.indices.put_alias(index="domains-2030", name=settings.domains_index)
    run(es, settings, "through-the-alias", RUN_END)
    assert settings.domains_index in check_output_mappings(es, settings)
    assert es.count(index="domains-2030")["count"] > 0  # written through the alias, not beside it


def test_a_strict_output_index_of_another_tool_fails_the_first_task(es, first_task):
    load_source(es, Settings(), dirty_corpus()[:20])
    es.indices.create(index="search-relationships", mappings={
        "dynamic": "strict", "properties": {"title": {"type": "text"}, "score": {"type": "float"}}})
    before = cluster_state(es, Settings())

    sentence = first_task()

    assert "output index search-relationships (setting 'relationships_index') has a dynamic: strict mapping of " \
           "fields mailforce does not write (score, title) and lacks fields it writes (e.g. 'account')" in sentence
    assert "set 'relationships_index' (MAILFORCE_RELATIONSHIPS_INDEX) to another index name" in sentence
    assert cluster_state(es, Settings()) == before  # no output index created, no lease, no watermark


def test_an_existing_output_index_the_product_can_complete_is_not_foreign(es, settings):
    """An index lacking some of the product's fields and mapping nothing else gets them added."""
    load_source(es, settings, dirty_corpus()[:20])
    es.indices.create(index=settings.account_stats_index,
                      mappings={"dynamic": "strict", "properties": {"account": {"type": "keyword"}}})
    run(es, settings, "completes", RUN_END)
    mapping = es.indices.get_mapping(index=settings.account_stats_index).body[settings.account_stats_index]
    assert mapping["mappings"]["properties"]["total_emails_count"]["type"] == "integer"


@pytest.mark.parametrize(("value", "named"), [("@acme.com", "write it without '@': 'acme.com'"),
                                              ("localhost", "e.g. 'acme.com'")])
def test_a_domain_setting_that_is_not_a_domain_fails_the_first_task(es, first_task, value, named):
    load_source(es, Settings(), dirty_corpus()[:20])
    before = cluster_state(es, Settings())

    sentence = first_task(internal_domains=f"kunaico.com, {value}")

    assert sentence.startswith(f"Setting that cannot work, nothing was written: setting 'internal_domains': "
                               f"{value!r} is not a domain")
    assert named in sentence and "fix MAILFORCE_INTERNAL_DOMAINS" in sentence
    assert cluster_state(es, Settings()) == before
    assert "setting 'allowed_domains': 'acme..com' is not a domain" in first_task(internal_domains="kunaico.com",
                                                                                 allowed_domains="acme..com")


def test_the_checks_need_no_privilege_beyond_the_documented_role(es, es_url):
    """Field capabilities need `read` on the source, get-mapping `view_index_metadata` on the outputs:
    both in the role of docs/CONFIGURATION.md (recorded through the test proxy playing Elasticsearch 9)."""
    from esproxy import EsProxy, missing_privileges, required_privileges
    from mailforce.es.client import ClientOptions, build_client
    from mailforce.es.preflight import check_settings
    from test_real_clusters import documented_role

    load_counted_source(es, SOURCE_MAPPING)
    with EsProxy(es_url, flavour="es9") as proxy:
        client = build_client(ClientOptions(url=proxy.url, engine="auto", max_retries=1, request_timeout=60))
        check_settings(client, Settings(arrival_field="indexed_at"))
        client.close()
        records = proxy.records
    assert {record.op for record in records} >= {"field_caps", "get_mapping"}
    assert missing_privileges(required_privileges(records), documented_role()) == {}


@pytest.mark.parametrize(("types", "outcome"), [
    ({"a": "date", "b": "date_nanos"}, []),
    ({"a": "date", "b": "unmapped"}, ["b"]),
    ({"a": "unmapped", "b": "unmapped"}, "does not map"),
    ({"a": "date", "b": "keyword"}, "maps as keyword in b, not as a date"),
    ({"a": "unmapped", "b": "long"}, "maps as long in b"),
])
def test_an_arrival_field_over_several_indices_is_a_date_in_at_least_one_and_nothing_else(types, outcome):
    from mailforce.core.setting_checks import check_arrival_field

    if isinstance(outcome, list):
        assert check_arrival_field("indexed_at", "mail", types) == outcome
    else:
        with pytest.raises(ArrivalFieldUnusable, match=outcome):
            check_arrival_field("indexed_at", "mail", types)
