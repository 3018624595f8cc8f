"""Erasure (issue 11 point 4): after `mailforce_erase` the outputs equal the oracle computed with the
erased addresses and domains treated as absent, also after later runs bring new mail from them."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from elasticsearch import helpers

from mailforce.core.dates import format_utc, utc_now
from mailforce.core.erasure import ErasureParamsError, parse_erasure_params
from mailforce.stages.erase import erase
from mailforce.tools.synthetic import dirty_corpus
from oracle import Coverage
from support import (
    FAR_FUTURE_RUN_END,
    assert_matches_oracle,
    load_source,
    raw_outputs,
    read_source,
    run,
)

EVERYTHING = Coverage(window_end=FAR_FUTURE_RUN_END)
LATER_RUN_END = datetime(2031, 1, 1, tzinfo=timezone.utc)  # a run after the first, reading the new mail
LATER = Coverage(window_end=LATER_RUN_END)
REQUEST = {"reason": "GDPR art. 17 request #42", "requested_by": "dpo@kunaico.com"}


def roles_documents(es, settings) -> list[dict]:
    es.indices.refresh(index=settings.roles_index)
    return [hit["_source"] for hit in helpers.scan(es, index=settings.roles_index)]


def chosen_erasures(es, settings) -> tuple[list[str], str]:
    """Two addresses and a domain that exercise every path: an address that is the only one on some
    message (its roles document goes), an address on a message several mailboxes hold (key dates of
    the other copies may move), and a domain of several addresses that is neither's."""
    documents = roles_documents(es, settings)
    holders = defaultdict(set)
    for document in documents:
        holders[document["message_id"]].add(document["account"])
    sole = Counter()
    shared = Counter()
    for document in documents:
        addresses = {entry["email_address"] for entry in document["message_roles"]}
        if len(addresses) == 1:
            sole.update(addresses)
        # a message several mailboxes hold when there is one (the dirty corpus), else any message
        shared.update({address: 1000 if len(holders[document["message_id"]]) > 1 else 1 for address in addresses})
    first = sorted(sole, key=lambda address: (-sole[address], address))[0]
    second = next(address for address in sorted(shared, key=lambda a: (-shared[a], a))
                  if address != first and address.rpartition("@")[2] != first.rpartition("@")[2])
    taken = {first.rpartition("@")[2], second.rpartition("@")[2]}
    domain_addresses = defaultdict(set)
    for document in documents:
        for entry in document["message_roles"]:
            domain_addresses[entry["domain"]].add(entry["email_address"])
    domain = sorted((d for d in domain_addresses if d not in taken and len(domain_addresses[d]) > 1),
                    key=lambda d: (-len(domain_addresses[d]), d))[0]
    return [first, second], domain


def new_mail_from(addresses: list[str], domain: str, bystander: str) -> list[dict]:
    """Later mail from the erased: they must not come back."""
    documents = []
    for number, address in enumerate(addresses):
        documents.append({"_id": f"after-erasure-{number}", "_source": {
            "account": "after@kunaico.com", "messageId": f"<after-{number}@mail>",
            "date": f"2030-06-0{number + 1}T10:00:00Z",
            "from": {"address": address.upper()}, "to": {"address": [bystander, f"someone@{domain}"]},
            "cc": {"address": f"Jane <jane@{domain}>"},
        }})
    documents.append({"_id": "after-erasure-only", "_source": {
        "account": "after@kunaico.com", "messageId": "<after-only@mail>", "date": "2030-06-05T10:00:00Z",
        "from": {"address": addresses[0]}, "to": {"address": f"x@{domain}"},
    }})
    return documents


def audit_records(es, settings) -> list[dict]:
    es.indices.refresh(index=settings.erasure_audit_index)
    return sorted((hit["_source"] for hit in helpers.scan(es, index=settings.erasure_audit_index)),
                  key=lambda record: (record["finished_at"], record["requested_at"]))


def erase_and_check(es, settings, source: list[dict]) -> tuple[list[str], str, dict]:
    addresses, domain = chosen_erasures(es, settings)
    before = roles_documents(es, settings)
    record = erase(es, settings, {"addresses": addresses, "domains": [domain], **REQUEST})
    expected = assert_matches_oracle(es, settings, source, [EVERYTHING], erased_addresses=addresses,
                                     erased_domains=[domain])
    named = [d for d in before if {e["email_address"] for e in d["message_roles"]} & set(addresses)
             or domain in d["domains"]]
    gone = [d for d in named if not {e["email_address"] for e in d["message_roles"]
                                     if e["email_address"] not in addresses and e["domain"] != domain}]
    assert named and gone, "the chosen values must name messages, some of them only"
    assert record["removed"]["roles"] == len(gone)
    assert record["removed"]["relationships"] > 0 and record["removed"]["contacts"] > 0
    assert record["removed"]["domains"] == 1  # the erased domain's own document
    assert record["addresses"] == sorted(addresses) and record["domains"] == [domain]
    assert record["requested_by"] == REQUEST["requested_by"] and record["reason"] == REQUEST["reason"]
    return addresses, domain, expected


def test_erasing_two_addresses_and_a_domain_from_the_dirty_corpus_equals_the_oracle_without_them(es, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    run(es, settings, "dirty")
    addresses, domain, expected = erase_and_check(es, settings, documents)
    for kind in ("relationships", "contacts"):
        assert not [key for key in expected[kind] if any(a in key for a in addresses)]
    assert domain not in expected["domains"]
    # nothing of them anywhere in the roles index
    for document in roles_documents(es, settings):
        assert not set(document["from_addresses"] + document["to_addresses"] + document["cc_addresses"]) & set(addresses)
        assert domain not in document["domains"]


@pytest.mark.extraction_slices(1, 8)
def test_later_runs_never_bring_the_erased_back_and_erasing_twice_changes_nothing(es, settings):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    run(es, settings, "dirty")
    addresses, domain, _ = erase_and_check(es, settings, documents)
    bystander = "bystander@example-new.com"
    later = new_mail_from(addresses, domain, bystander)
    load_source(es, settings, later)
    stats = run(es, settings, "after-erasure", LATER_RUN_END)
    assert stats["filtered_addresses"] >= 7  # the erased entries of the new mail, dropped like internal ones
    source = read_source(es, settings)
    assert_matches_oracle(es, settings, source, [LATER], erased_addresses=addresses, erased_domains=[domain])
    es.indices.refresh(index=settings.contacts_index)
    assert es.count(index=settings.contacts_index, query={"term": {"email_address": bystander}})["count"] == 1

    before = raw_outputs(es, settings)
    # a second request (requested later: the same values in the same second are the same request)
    again = erase(es, settings, {"addresses": [a.upper() for a in addresses], "domains": [domain.upper()], **REQUEST},
                  requested_at=format_utc(utc_now() + timedelta(days=1)))
    assert again["removed_total"] == 0 and sum(again["rewritten"].values()) == 0
    assert raw_outputs(es, settings) == before  # updated_at included: not one document rewritten
    records = audit_records(es, settings)
    assert len(records) == 2 and records[0]["removed_total"] > 0
    es.indices.refresh(index=settings.suppressions_index)
    assert es.count(index=settings.suppressions_index)["count"] == 3  # one per value, recorded once

    # a reconciliation-like re-read of everything (a backfill) still keeps them out
    run(es, settings, "backfill", LATER_RUN_END, from_date="2000-01-01")
    assert_matches_oracle(es, settings, source, [LATER], erased_addresses=addresses, erased_domains=[domain])


def test_erasure_on_enron_equals_the_oracle_and_new_mail_from_the_erased_stays_out(es, settings, enron):
    source = enron
    run(es, settings, "enron")
    addresses, domain, _ = erase_and_check(es, settings, source)
    load_source(es, settings, new_mail_from(addresses, domain, "new.person@example-new.com"))
    run(es, settings, "enron-after", LATER_RUN_END)
    assert_matches_oracle(es, settings, read_source(es, settings), [LATER], erased_addresses=addresses,
                          erased_domains=[domain])


@pytest.mark.parametrize("params, message", [
    ({"addresses": ["not an address"], **REQUEST}, "is not an e-mail address"),
    ({"domains": ["localhost"], **REQUEST}, "is not a domain name"),
    ({"addresses": [], "domains": [], **REQUEST}, "nothing to erase"),
    ({"addresses": ["jane@acme.com"], "reason": " ", "requested_by": "dpo"}, "'reason' is required"),
    ({"addresses": ["jane@acme.com"], "reason": "art. 17"}, "'requested_by' is required"),
    ({"addresses": 42, **REQUEST}, "must be a list"),
])
def test_a_bad_param_is_refused_with_a_clear_message_before_any_write(es, settings, params, message):
    with pytest.raises(ErasureParamsError, match=message):
        erase(es, settings, params)
    assert not es.indices.exists(index=settings.suppressions_index)
    assert not es.indices.exists(index=settings.erasure_audit_index)


def test_the_form_values_are_normalised_like_the_pipeline_normalises_addresses():
    request = parse_erasure_params({"addresses": ["Jane Doe <Jane@Acme.COM>", "jane@acme.com"],
                                    "domains": "Globex.com, initech.com", **REQUEST}, "2026-01-01T00:00:00Z")
    assert request.addresses == ("jane@acme.com",)
    assert request.domains == ("globex.com", "initech.com")
    assert request.suppressions.suppresses("anyone@globex.com") and not request.suppressions.suppresses("a@acme.com")


@pytest.fixture(scope="module")
def erase_dag():
    import os

    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    db.resetdb()
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    return bag.dags["mailforce_erase"]


@pytest.fixture
def connection_to_engine(es_url, monkeypatch):
    import json

    host, port = es_url.rsplit("//", 1)[1].split(":")
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", json.dumps(
        {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http", "extra": {"engine": "osmem"}}
    ))


def test_the_erase_dag_is_a_form_run_one_at_a_time_never_scheduled(erase_dag):
    assert erase_dag.schedule is None or str(erase_dag.timetable.summary).lower() in ("none", "never")
    assert erase_dag.max_active_runs == 1
    params = erase_dag.params
    for name in ("addresses", "domains", "reason", "requested_by"):
        assert params.get_param(name).schema.get("title"), name
        assert params.get_param(name).description, name
    assert params.get_param("addresses").schema["type"] == "array"
    assert params.get_param("reason").schema["minLength"] == 1


def test_an_erasure_through_airflow_equals_the_oracle_and_logs_counts_only(
        erase_dag, connection_to_engine, es, settings, caplog):
    documents = dirty_corpus()
    load_source(es, settings, documents)
    run(es, settings, "dirty")
    addresses, domain = chosen_erasures(es, settings)
    with caplog.at_level("INFO"):
        dag_run = erase_dag.test(run_conf={"addresses": addresses, "domains": [domain], **REQUEST})
    assert dag_run.state == "success"
    assert_matches_oracle(es, settings, documents, [EVERYTHING], erased_addresses=addresses, erased_domains=[domain])
    [record] = audit_records(es, settings)
    assert record["removed_total"] > 0 and record["addresses"] == sorted(addresses)
    logs = "\n".join(entry.getMessage() for entry in caplog.records)
    assert "role entries removed" in logs
    assert f"Erasure of {len(addresses)} addresses and 1 domain: " in logs  # plurals said right
    assert not [value for value in [*addresses, domain] if value in logs]


def test_a_bad_form_value_fails_the_first_task_and_writes_nothing(erase_dag, connection_to_engine, es):
    dag_run = erase_dag.test(run_conf={"addresses": ["nobody at all"], **REQUEST})
    assert dag_run.state == "failed"
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["validate_request"] == "failed"
    assert states["record_suppressions"] in ("upstream_failed", None)
    assert not es.indices.exists(index="search-mailforce-suppressions")


def test_an_erasure_needs_no_more_than_the_documented_role_and_uses_delete_on_the_outputs(es, es_url, settings):
    from esproxy import EsProxy, missing_privileges, required_privileges
    from mailforce.es.client import ClientOptions, build_client
    from test_real_clusters import documented_role

    documents = dirty_corpus()[:200]
    load_source(es, settings, documents)
    run(es, settings, "before")
    addresses, domain = chosen_erasures(es, settings)
    with EsProxy(es_url, flavour="es9") as proxy:
        client = build_client(ClientOptions(url=proxy.url, engine="auto", max_retries=3, request_timeout=60))
        erase(client, settings, {"addresses": addresses, "domains": [domain], **REQUEST})
        run(client, settings, "after", LATER_RUN_END)  # a run reads the suppression list
        client.close()
        required = required_privileges(proxy.records)
    assert missing_privileges(required, documented_role()) == {}
    assert "delete" in required[settings.roles_index] | required[settings.relationships_index]


@pytest.mark.extraction_slices(1, 8)
def test_a_reconciliation_counting_late_mail_from_the_erased_keeps_them_out(es, settings):
    from driver import run_stages
    from mailforce.stages.reconcile import reconcile_window

    documents = dirty_corpus()
    load_source(es, settings, documents)
    run(es, settings, "dirty")
    addresses, domain = chosen_erasures(es, settings)
    erase(es, settings, {"addresses": addresses, "domains": [domain], **REQUEST})
    late = new_mail_from(addresses, domain, "late.bystander@example-new.com")
    for document in late:  # dated long before the watermark: only reconciliation counts it
        document["_source"]["date"] = document["_source"]["date"].replace("2030-", "2001-")
    load_source(es, settings, late)
    stats = run_stages(es, settings, reconcile_window(es, settings), "reconcile")
    assert stats["reconciliation"] is True and stats["late_messages"] == len(late)
    assert_matches_oracle(es, settings, read_source(es, settings), [EVERYTHING], erased_addresses=addresses,
                          erased_domains=[domain])


def test_the_erase_stages_records_survive_their_xcom_form():
    from mailforce.core.erasure import ErasedRoles, RecomputedOutputs

    roles = ErasedRoles(domains=("acme.com", "beta.org"), accounts=("kunai-jim",), roles_rewritten=3, roles_deleted=1,
                        entries_removed=5, key_dates_moved=2)
    outputs = RecomputedOutputs(written={"relationships": 4, "contacts": 0}, removed={"relationships": 2})
    assert ErasedRoles.from_xcom(roles.to_xcom()) == roles
    assert RecomputedOutputs.from_xcom(outputs.to_xcom()) == outputs
    assert roles.to_xcom()["domains"] == ["acme.com", "beta.org"]  # JSON lists in XCom, tuples in the record
