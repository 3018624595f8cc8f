"""Failures are loud and safe: retried with backoff, reported with their cause, no partial watermark."""

from __future__ import annotations

import json
import logging
import socket
from types import SimpleNamespace

import pytest
from elasticsearch import ConnectionError as ElasticsearchConnectionError

from mailforce.core.setting_checks import ForeignMapping
from mailforce.es.client import ClientOptions, build_client, describe_options, options_from_connection
from mailforce.es.indices import SourceIndexMissing
from mailforce.es.indices import ROLES_PROPERTIES, ensure_output_indices
from mailforce.tools.synthetic import dirty_corpus
from mailforce.es.watermark import read_watermark
from mailforce.es.writes import BulkWriteError
from support import load_source, run


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_engine_is_retried_then_fails_with_the_cause(settings, caplog):
    client = build_client(ClientOptions(url=f"http://127.0.0.1:{_closed_port()}", engine="osmem", max_retries=2,
                                        request_timeout=2))
    with caplog.at_level(logging.WARNING, logger="elastic_transport"):
        with pytest.raises(ElasticsearchConnectionError, match="Connection refused|Failed to establish"):
            run(client, settings, "unreachable")
    retries = [record for record in caplog.records if "Retrying request" in record.getMessage()]
    assert len(retries) == 2


def test_fresh_cluster_without_any_output_index_runs(es, settings):
    """The old script crashed when the runtime-stats index did not exist yet."""
    load_source(es, settings, [])
    assert read_watermark(es, settings) is None
    stats = run(es, settings, "fresh")
    assert stats["emails_processed"] == 0
    for index in settings.output_indices:
        assert es.indices.exists(index=index), index


def test_a_missing_source_index_is_a_clear_error_not_an_empty_window(es, settings):
    with pytest.raises(SourceIndexMissing, match="source index 'search-shinobi-email' does not exist"):
        run(es, settings, "no-source")
    assert read_watermark(es, settings) is None


def test_a_failing_bulk_item_fails_the_run_and_names_the_cause(es, settings):
    load_source(es, settings, dirty_corpus())
    # An index made by hand with a date format our ISO strings do not match: every item fails.
    properties = dict(ROLES_PROPERTIES, date={"type": "date", "format": "epoch_millis"})
    es.indices.create(index=settings.roles_index, mappings={"dynamic": "strict", "properties": properties})

    with pytest.raises(BulkWriteError, match=r"message roles: \d+ documents failed to index .*status=400") as raised:
        run(es, settings, "bad-mapping")
    assert raised.value.what == "message roles" and raised.value.failed > 0 and raised.value.conflicts == 0
    assert raised.value.errors and all(next(iter(item.values()))["status"] == 400 for item in raised.value.errors)
    assert read_watermark(es, settings) is None


def test_conflicting_existing_mapping_is_refused_before_writing(es, settings):
    es.indices.create(index=settings.domains_index, mappings={"properties": {"total_emails": {"type": "keyword"}}})
    with pytest.raises(ForeignMapping, match="maps 'total_emails' as keyword, but mailforce writes it as integer"):
        ensure_output_indices(es, settings)


def test_missing_fields_are_added_to_an_existing_index(es, settings):
    es.indices.create(index=settings.account_stats_index, mappings={"properties": {"account": {"type": "keyword"}}})
    ensure_output_indices(es, settings)
    mapping = es.indices.get_mapping(index=settings.account_stats_index)
    assert mapping[settings.account_stats_index]["mappings"]["properties"]["total_emails_count"]["type"] == "integer"


def _connection(**fields):
    values = {"host": None, "port": None, "schema": None, "login": None, "password": None, "extra": None}
    values.update(fields)
    extra = values.pop("extra")
    return SimpleNamespace(**values, extra_dejson=json.loads(extra) if extra else {})


def test_connection_fields_and_extras_become_client_options():
    options = options_from_connection(_connection(
        host="es01", port=9243, schema="https", login="elastic", password="s3cret-pw",
        extra=json.dumps({"verify_certs": "false", "ca_certs": "/certs/ca.crt", "request_timeout": 30}),
    ))
    assert options.url == "https://es01:9243"
    assert (options.username, options.password, options.verify_certs) == ("elastic", "s3cret-pw", False)
    assert options.ca_certs == "/certs/ca.crt" and options.request_timeout == 30.0
    assert "s3cret-pw" not in describe_options(options) and "s3cret-pw" not in repr(options)


def test_api_key_is_used_and_never_shown():
    options = options_from_connection(_connection(host="https://es.example.com:443", extra=json.dumps({"api_key": "KEY-123-secret"})))
    assert options.url == "https://es.example.com:443" and options.api_key == "KEY-123-secret"
    assert "KEY-123-secret" not in describe_options(options) and "auth=api-key" in describe_options(options)


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"engine": "solr"}, "'engine' must be one of"), ({"verify_certs": "maybe"}, "'verify_certs'"),
     ({"apikey": "x"}, "unknown connection extras")],
)
def test_wrong_connection_extras_are_named(extra, message):
    with pytest.raises(ValueError, match=message):
        options_from_connection(_connection(host="localhost", extra=json.dumps(extra)))
