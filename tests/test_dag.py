"""The DAG through Airflow itself: integrity, params form, mapping bounds, and a real run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mailforce import DAG_ID
from mailforce.core.partitions import plan_partitions
from mailforce.tools.synthetic import dirty_corpus
from oracle import Coverage
from support import assert_matches_oracle, load_source


STAGES = {
    "fetch_watermark",
    "extract_message_roles",
    "list_domains",
    "compile_domain_partition",
    "rescore_relationships",
    "bulk_index_account_statistics",
    "publish_stats",
}


@pytest.fixture(scope="session")
def airflow_db():
    from airflow.utils import db

    db.resetdb()


@pytest.fixture(scope="session")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


@pytest.fixture
def connection_to_engine(es_url, monkeypatch):
    host, port = es_url.rsplit("//", 1)[1].split(":")
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", json.dumps(
        {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http", "extra": {"engine": "osmem"}}
    ))


def test_dag_loads_with_tags_retries_and_docs(dag):
    assert set(dag.task_ids) == STAGES
    assert dag.tags and "mailforce" in dag.tags
    assert dag.doc_md and "Stages" in dag.doc_md
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.doc_md or getattr(task, "partial_kwargs", {}).get("doc_md"), task.task_id


def test_stages_run_in_order(dag):
    downstream = {task.task_id: set(task.downstream_task_ids) for task in dag.tasks}
    assert "extract_message_roles" in downstream["fetch_watermark"]
    assert "list_domains" in downstream["extract_message_roles"]
    assert "compile_domain_partition" in downstream["list_domains"]
    assert "compile_domain_partition" in downstream["rescore_relationships"]
    assert "bulk_index_account_statistics" in downstream["compile_domain_partition"]
    assert "publish_stats" in downstream["compile_domain_partition"]
    assert "publish_stats" in downstream["bulk_index_account_statistics"]
    assert dag.get_task("publish_stats").trigger_rule == "none_failed"


def test_every_output_index_is_an_asset_produced_by_the_dag(dag):
    produced: dict[str, set[str]] = {}
    for task in dag.tasks:
        outlets = task.outlets or getattr(task, "partial_kwargs", {}).get("outlets") or []
        for asset in outlets:
            produced.setdefault(asset.name, set()).add(task.task_id)
    assert produced == {
        "search-message-roles": {"extract_message_roles"},
        "search-accounts-engagements": {"compile_domain_partition", "rescore_relationships"},
        "search-domains-engagements": {"compile_domain_partition", "rescore_relationships"},
        "search-relationships": {"compile_domain_partition", "rescore_relationships"},
        "search-contacts": {"compile_domain_partition", "rescore_relationships"},
        "search-engagement-timeline": {"compile_domain_partition"},
        "search-accounts_statistics_simple": {"bulk_index_account_statistics"},
        "search-runtime-stats": {"publish_stats"},
    }


def test_params_form_has_titles_descriptions_and_formats(dag):
    params = dag.params
    assert set(params.keys()) == {"from_date", "to_date", "backfilled_accounts", "exclude_accounts"}
    for name in params.keys():
        param = params.get_param(name)
        assert param.schema.get("title") and param.description and "e.g." in param.description, name
    assert params.get_param("from_date").schema["format"] == "date-time"
    assert "array" in params.get_param("exclude_accounts").schema["type"]


@pytest.mark.parametrize(
    "conf",
    [{"from_date": "not a date"}, {"backfilled_accounts": "kunai-jim"}, {"exclude_accounts": [3]}],
)
def test_bad_param_is_refused_before_any_task_runs(dag, conf, connection_to_engine, es):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        dag.test(run_conf=conf)
    assert not es.indices.exists(index="search-message-roles")  # nothing was read or written


def test_ten_thousand_domains_stay_within_the_partition_setting():
    work = {f"domain{number}.example": (number % 97) + 1 for number in range(10_000)}
    partitions = plan_partitions(work, 8)
    assert len(partitions) == 8
    assert sum(len(partition.domains) for partition in partitions) == 10_000
    shares = [partition.work for partition in partitions]
    assert max(shares) - min(shares) <= 97  # balanced within the heaviest single domain


def test_a_dag_run_through_airflow_matches_the_oracle(dag, connection_to_engine, es, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)

    dag_run = dag.test(run_conf={"exclude_accounts": ["acct-0006"]})

    assert dag_run.state == "success"
    instances = {(ti.task_id, ti.map_index): ti for ti in dag_run.get_task_instances()}
    mapped = [ti for (task_id, _), ti in instances.items() if task_id == "compile_domain_partition"]
    assert 1 <= len(mapped) <= 8
    assert all(ti.state == "success" for ti in instances.values())
    for ti in mapped:
        assert ti.rendered_map_index and "% of work" in ti.rendered_map_index
    stats = es.search(index="search-runtime-stats")["hits"]["hits"][0]["_source"]
    assert stats["run_id"] == dag_run.run_id and stats["exclude_accounts"] == ["acct-0006"]
    from mailforce.core.dates import parse_source_date

    assert_matches_oracle(es, settings, documents, [
        Coverage(window_end=parse_source_date(stats["window_end"]), exclude_accounts=frozenset({"acct-0006"}))
    ])


def test_unknown_conf_key_fails_the_first_task_with_its_name(dag, connection_to_engine, es):
    dag_run = dag.test(run_conf={"form_date": "2001-01-01T00:00:00Z"})
    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["fetch_watermark"] == "failed"
    assert states["extract_message_roles"] in ("upstream_failed", None)


def test_credentials_never_reach_a_log_line(dag, es_url, es, settings, monkeypatch, capfd, caplog):
    password, api_key = "Pw-very-secret-4711", "ApiKey-very-secret-0815"
    host, port = es_url.rsplit("//", 1)[1].split(":")
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", json.dumps({
        "conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http",
        "login": "elastic", "password": password, "extra": {"engine": "osmem", "api_key": api_key},
    }))
    load_source(es, settings, dirty_corpus()[:50])

    with caplog.at_level("DEBUG"):
        dag_run = dag.test()

    assert dag_run.state == "success"
    captured = capfd.readouterr()
    logs = captured.out + captured.err + "\n".join(record.getMessage() for record in caplog.records)
    for log_file in (Path(os.environ["AIRFLOW_HOME"]) / "logs").rglob("*"):
        if log_file.is_file():
            logs += log_file.read_text(errors="replace")
    assert "Elasticsearch connection 'elasticsearch_default'" in logs and "auth=api-key" in logs
    assert password not in logs and api_key not in logs
