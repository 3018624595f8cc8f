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
    "plan_extraction_slices",
    "extract_message_roles",
    "identify_account_owners",
    "list_domains",
    "compile_domain_partition",
    "compile_people",
    "rescore_relationships",
    "bulk_index_account_statistics",
    "announce_outputs",
    "announce_changes",
    "publish_stats",
}


@pytest.fixture(scope="session")
def airflow_db():
    from airflow.utils import db

    db.resetdb()


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="session")
def dag(dagbag):
    return dagbag.dags[DAG_ID]


@pytest.fixture(autouse=True)
def params_restored(request):
    """`dag.test(run_conf=...)` keeps the resolved values on the DAG's Param objects: restore them,
    so one test's conf never becomes the next test's default."""
    if "dag" not in request.fixturenames:
        yield
        return
    dag = request.getfixturevalue("dag")
    holders = [dag.params, *(task.params for task in dag.tasks)]
    saved = [(param, param.value) for holder in holders for param in
             (holder.get_param(name) for name in holder.keys())]
    yield
    for param, value in saved:
        param.value = value


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
    assert "extract_message_roles" in downstream["plan_extraction_slices"]  # mapped, one per slice
    assert "identify_account_owners" in downstream["extract_message_roles"]
    assert "list_domains" in downstream["identify_account_owners"]
    assert "compile_domain_partition" in downstream["list_domains"]
    assert "compile_domain_partition" in downstream["rescore_relationships"]
    assert "bulk_index_account_statistics" in downstream["compile_domain_partition"]
    assert "announce_outputs" in downstream["compile_domain_partition"]
    assert "publish_stats" in downstream["compile_domain_partition"]
    assert "publish_stats" in downstream["bulk_index_account_statistics"]
    assert "publish_stats" in downstream["announce_outputs"]  # the lease, given back last, covers it
    assert "announce_changes" in downstream["compile_domain_partition"]
    assert "announce_changes" in downstream["rescore_relationships"]
    assert "publish_stats" in downstream["announce_changes"]
    for task_id in ("publish_stats", "announce_outputs", "announce_changes", "bulk_index_account_statistics"):
        assert dag.get_task(task_id).trigger_rule == "none_failed", task_id
    # the scoring date reaches every compile instance as data from the rescoring
    compile_task = dag.get_task("compile_domain_partition")
    assert "rescored" in compile_task.partial_kwargs.get("op_kwargs", {}), compile_task.partial_kwargs


def test_both_counting_dags_run_the_same_stages_with_the_same_lineage(dagbag):
    main, reconcile = dagbag.dags[DAG_ID], dagbag.dags["mailforce_reconcile"]
    shared = STAGES - {"fetch_watermark"}
    assert set(reconcile.task_ids) == shared | {"reconcile_window"}
    for task_id in shared:
        ours, theirs = main.get_task(task_id), reconcile.get_task(task_id)
        assert sorted(task.task_id for task in ours.downstream_list) == \
            sorted(task.task_id for task in theirs.downstream_list), task_id
        assert outlet_names(ours) == outlet_names(theirs), task_id


def test_the_in_process_sequence_is_the_dags_order(dagbag):
    """The driver and the benchmark run `mailforce.sequence`; both DAGs run its stages as tasks: the
    same stages, and its order is one the DAGs' edges allow (nothing runs before what it needs)."""
    from mailforce.sequence import COUNTING_STAGES

    for dag_id, first in ((DAG_ID, "fetch_watermark"), ("mailforce_reconcile", "reconcile_window")):
        dag = dagbag.dags[dag_id]
        assert set(COUNTING_STAGES) == set(dag.task_ids) - {first}, dag_id
        for position, task_id in enumerate(COUNTING_STAGES):
            later = set(COUNTING_STAGES[position + 1:])
            assert not later & dag.get_task(task_id).get_flat_relative_ids(upstream=True), (dag_id, task_id)


def outlet_names(task) -> list[str]:
    outlets = task.outlets or getattr(task, "partial_kwargs", {}).get("outlets") or []
    return sorted(asset.name for asset in outlets)


def test_every_output_index_is_an_asset_produced_by_the_dag(dag):
    from airflow.sdk import Asset

    produced: dict[str, set[str]] = {}
    for task in dag.tasks:
        for name in outlet_names(task):
            produced.setdefault(name, set()).add(task.task_id)
    # Once per run, never by the mapped compile (no asset alias: concurrent mapped instances race
    # inside Airflow on its alias bookkeeping); every asset is declared, none made on the fly.
    assert produced == {
        "search-message-roles": {"extract_message_roles"},
        "search-accounts-engagements": {"announce_outputs"},
        "search-domains-engagements": {"announce_outputs"},
        "search-relationships": {"announce_outputs"},
        "search-contacts": {"announce_outputs"},
        "search-engagement-timeline": {"announce_outputs"},
        "search-organizations": {"announce_outputs"},
        "search-accounts_statistics_simple": {"bulk_index_account_statistics"},
        "search-runtime-stats": {"publish_stats"},
        "search-relationship-changes": {"announce_changes"},
    }
    for task in dag.tasks:
        outlets = task.outlets or getattr(task, "partial_kwargs", {}).get("outlets") or []
        assert all(isinstance(asset, Asset) and asset.group == "mailforce" for asset in outlets), task.task_id
    assert not (dag.get_task("compile_domain_partition").partial_kwargs.get("outlets") or [])
    from mailforce.settings import load_settings

    source = load_settings(use_variable=False).source_index
    assert [asset.name for asset in dag.get_task("extract_message_roles").inlets] == [source]


def test_compile_task_documentation_agrees_with_the_dag_documentation(dag):
    compile_doc = dag.get_task("compile_domain_partition").partial_kwargs.get("doc_md") or \
        dag.get_task("compile_domain_partition").doc_md
    stage = dag.doc_md.split("5. `compile_domain_partition`", 1)[1].split("6. ", 1)[0]
    for text in (compile_doc, stage):
        flat = " ".join(text.split())
        assert "add" in flat and "recompute" in flat and "over all time" in flat and "retry" in flat, flat
        assert "unchanged" in flat and "asset event" in flat, flat
    assert "rescore_relationships" in compile_doc
    assert dag.doc_md.index("4. `rescore_relationships`") < dag.doc_md.index("5. `compile_domain_partition`")


def test_params_form_has_titles_descriptions_and_formats(dag):
    params = dag.params
    assert set(params.keys()) == {"from_date", "to_date", "backfilled_accounts", "exclude_accounts"}
    for name in params.keys():
        param = params.get_param(name)
        assert param.schema.get("title") and param.description and "e.g." in param.description, name
    assert params.get_param("from_date").schema["format"] == "date-time"
    assert "array" in params.get_param("exclude_accounts").schema["type"]


def test_date_params_carry_no_raw_regular_expression(dag):
    for name in ("from_date", "to_date"):
        assert "pattern" not in dag.params.get_param(name).schema, name


def test_bad_date_fails_the_first_task_in_one_plain_sentence(dag, connection_to_engine, es, caplog):
    with caplog.at_level("ERROR"):
        dag_run = dag.test(run_conf={"from_date": "not a date"})
    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["fetch_watermark"] == "failed"
    messages = [record.getMessage() for record in caplog.records if "Wrong run parameter" in record.getMessage()]
    assert messages, [record.getMessage() for record in caplog.records]
    assert messages[0] == (
        "Wrong run parameter, nothing was read or written: param 'from_date': 'not a date' is not an ISO-8601 "
        "date-time (e.g. 2001-05-14T23:39:00Z). Fix it and trigger the run again."
    )
    assert "\\d" not in messages[0] and "^" not in messages[0]
    assert not es.indices.exists(index="search-message-roles")


@pytest.mark.parametrize(
    "conf",
    [{"backfilled_accounts": "kunai-jim"}, {"exclude_accounts": [3]}],
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


def test_a_run_that_wrote_nothing_announces_nothing_and_still_publishes(dag, connection_to_engine, es, settings):
    load_source(es, settings, dirty_corpus()[:40])
    first = dag.test()
    assert first.state == "success"
    again = dag.test()  # the same mail, nothing new: every document is already up to date
    assert again.state == "success"
    states = {ti.task_id: ti.state for ti in again.get_task_instances()}
    assert states["announce_outputs"] == "skipped" and states["publish_stats"] == "success", states
    assert states["announce_changes"] == "skipped", states
    names = {name for name, _, _ in asset_events_of(again)}
    assert not names & {"search-accounts-engagements", "search-relationships", "search-contacts",
                        "search-engagement-timeline", "search-domains-engagements",
                        "search-relationship-changes"}, names
    assert "search-runtime-stats" in names
    assert {name for name, _, _ in asset_events_of(first)} >= {"search-relationships", "search-engagement-timeline"}


def run_summary_of(dag_run) -> str | None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(select(XComModel).where(
            XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id,
            XComModel.task_id == "publish_stats", XComModel.key == "run_summary",
        )).first()
        return None if row is None else XComModel.deserialize_value(row)


def asset_events_of(dag_run) -> list[tuple[str, str, dict]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(AssetModel.name, AssetEvent.source_task_id, AssetEvent.extra)
                               .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                               .where(AssetEvent.source_run_id == dag_run.run_id)).all()
        return [(name, task_id, dict(extra or {})) for name, task_id, extra in rows]


def test_unknown_accounts_warn_and_the_run_summary_says_so_in_one_line(dag, connection_to_engine, es, settings,
                                                                        caplog):
    load_source(es, settings, dirty_corpus()[:80])
    with caplog.at_level("INFO"):
        dag_run = dag.test(run_conf={"exclude_accounts": ["acct-9999"]})
    assert dag_run.state == "success"  # a new mailbox may not be loaded yet: a warning, not a failure
    warnings = [record.getMessage() for record in caplog.records
                if record.levelname == "WARNING" and "Unknown accounts" in record.getMessage()]
    assert warnings == ["Unknown accounts (exclude_accounts acct-9999): not in the source index: mistyped, or a "
                        "mailbox not loaded yet (the run goes on; nothing is read for them)"], warnings

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        keys = set(session.scalars(select(XComModel.key).where(
            XComModel.run_id == dag_run.run_id, XComModel.task_id == "publish_stats")))
    assert keys == {"return_value", "run_summary"}  # not one entry per record field

    summary = run_summary_of(dag_run)
    assert summary is not None and "\n" not in summary
    stats = es.search(index="search-runtime-stats", query={"term": {"run_id": dag_run.run_id}})["hits"]["hits"][0]["_source"]
    assert summary.startswith(f"Window (the beginning, {stats['window_end']}]; ")
    assert f"{stats['emails_processed']:,} messages of {stats['email_accounts_processed']} accounts" in summary
    assert f"{stats['domains_processed']} domains in " in summary and " late message" in summary
    assert "documents written" in summary and "including retries" in summary
    assert "WARNING unknown accounts (exclude_accounts acct-9999)" in summary

    events = asset_events_of(dag_run)
    by_index = {}
    for name, task_id, extra in events:
        by_index.setdefault(name, []).append((task_id, extra))
    roles = by_index["search-message-roles"][0][1]
    assert roles["index"] == "search-message-roles" and roles["documents_written"] > 0 and roles["messages"] > 0
    # the compiled outputs: announced once by announce_outputs, with what the run's stats say it wrote
    for name, kind in (("search-accounts-engagements", "accounts_engagements"), ("search-relationships", "relationships"),
                       ("search-contacts", "contacts"), ("search-engagement-timeline", "engagement_timeline"),
                       ("search-domains-engagements", "domains_engagements")):
        assert [task_id for task_id, _ in by_index[name]] == ["announce_outputs"], (name, by_index[name])
        extra = by_index[name][0][1]
        assert extra["documents_written"] == stats["documents_written"][kind] > 0, (name, extra)
    assert by_index["search-runtime-stats"][0][1]["summary"] == summary
    # the change feed: its own event, once, with the crossings the run recorded (all new relationships)
    [(task_id, extra)] = by_index["search-relationship-changes"]
    assert task_id == "announce_changes" and extra["index"] == "search-relationship-changes"
    assert extra["documents_written"] == stats["documents_written"]["relationship_changes"] > 0
    assert extra["scoring_date"] == stats["scoring_date"][:10]


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


def test_a_setting_that_cannot_work_fails_the_first_task_once_in_one_sentence(dag, connection_to_engine, es,
                                                                              settings, monkeypatch, caplog):
    """An arrival field the source does not map (its mapping is dynamic: false): no retry, nothing written."""
    from mailforce.tools.loader import SOURCE_MAPPING

    properties = {name: spec for name, spec in SOURCE_MAPPING["properties"].items() if name != "indexed_at"}
    es.indices.create(index=settings.source_index, mappings={**SOURCE_MAPPING, "properties": properties})
    load_source(es, settings, dirty_corpus()[:20])
    monkeypatch.setenv("MAILFORCE_ARRIVAL_FIELD", "indexed_at")
    with caplog.at_level("ERROR"):
        dag_run = dag.test()
    assert dag_run.state == "failed"
    instances = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    assert instances["fetch_watermark"].state == "failed" and instances["fetch_watermark"].try_number == 1
    assert instances["extract_message_roles"].state in ("upstream_failed", None)
    messages = [record.getMessage() for record in caplog.records if "Setting that cannot work" in record.getMessage()]
    assert messages and messages[0].startswith(
        "Setting that cannot work, nothing was written: setting 'arrival_field' names 'indexed_at', which the source "
        "index 'search-shinobi-email' does not map"), messages
    assert sorted(es.indices.get(index="*").body) == [settings.source_index]  # no output, no lease
