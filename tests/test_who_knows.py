"""`python -m mailforce.tools.who_knows`: the ranked accounts of a domain or an address, from a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailforce.tools.synthetic import CorpusSpec, iter_corpus
from mailforce.tools.who_knows import main
from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def small_run(es, settings):
    documents = list(iter_corpus(CorpusSpec(seed=5, messages=160, accounts=4, correspondent_domains=6, dirt=0.05)))
    load_source(es, settings, documents)
    run(es, settings, "small")
    return assert_matches_oracle(es, settings, documents, [Coverage(window_end=FAR_FUTURE_RUN_END)])


def who_knows(es_url, capsys, *arguments) -> tuple[int, str, str]:
    code = main([*arguments, "--url", es_url, "--engine", "osmem"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_domain_prints_its_best_connected_accounts_in_order_with_their_figures(small_run, es_url, capsys):
    domain, document = max(small_run["domains"].items(), key=lambda item: (len(item[1]["accounts"]), item[0]))
    ranking = document["best_connected_accounts"]
    assert len(ranking) >= 2
    code, out, _ = who_knows(es_url, capsys, domain.upper())
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{domain}: {document['total_emails']} messages, {document['addresses_count']} addresses")
    rows = [line.split() for line in lines[2:]]
    assert [row[1] for row in rows] == [entry["account"] for entry in ranking]
    assert [int(row[2]) for row in rows] == [entry["strength"] for entry in ranking]
    assert [int(row[3]) for row in rows] == [entry["total_count"] for entry in ranking]
    for row in rows:
        relationships = [r for key, r in small_run["relationships"].items()
                         if r["account"] == row[1] and r["domain"] == domain]
        assert int(row[6]) == len(relationships)
        assert row[7] == f"{sum(r['two_way'] for r in relationships)}/{len(relationships)}"
        engagement = small_run["engagements"][(row[1], domain)]
        assert row[4] == engagement["earliest_engagement_date"][:10] and row[5] == engagement["latest_engagement_date"][:10]


def test_an_address_prints_its_relationships_ranked(small_run, es_url, capsys):
    address, contact = max(small_run["contacts"].items(), key=lambda item: (len(item[1]["accounts"]), item[0]))
    code, out, _ = who_knows(es_url, capsys, f"Someone <{address[0] if isinstance(address, tuple) else address}>", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["kind"] == "address" and result["messages"] == contact["total_count"]
    assert [row["account"] for row in result["ranked"]] == [e["account"] for e in contact["best_connected_accounts"]]
    for row in result["ranked"]:
        key = (row["account"], result["subject"])
        relationship = small_run["relationships"][key]
        assert (row["strength"], row["messages"], row["from"], row["to"], row["cc"], row["two_way"]) == (
            relationship["strength"], relationship["total_count"], relationship["from_count"],
            relationship["to_count"], relationship["cc_count"], relationship["two_way"])


def test_unknown_and_bad_subjects_say_so_with_their_exit_codes(small_run, es_url, capsys):
    code, out, err = who_knows(es_url, capsys, "nobody-knows.example")
    assert (code, out) == (1, "") and "no domain document" in err
    code, _, err = who_knows(es_url, capsys, "ghost@nobody-knows.example")
    assert code == 1 and "no contact document" in err
    code, _, err = who_knows(es_url, capsys, "localhost")
    assert code == 2 and "neither a domain" in err


def test_an_erased_domain_is_reported_as_erased(small_run, es, settings, es_url, capsys):
    from mailforce.stages.erase import erase

    domain = sorted(small_run["domains"])[0]
    erase(es, settings, {"domains": [domain], "reason": "test", "requested_by": "dpo"})
    code, _, err = who_knows(es_url, capsys, domain)
    assert code == 1 and "erased" in err


def run_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    environment.pop("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", None)
    return subprocess.run([sys.executable, "-m", "mailforce.tools.who_knows", *arguments], capture_output=True,
                          text=True, env=environment, timeout=120)


def test_the_module_runs_as_a_command_and_an_unreachable_cluster_exits_2_at_once(closed_port):
    done = run_command("acme.com", "--url", f"http://127.0.0.1:{closed_port}", "--engine", "osmem")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"who_knows: cannot reach Elasticsearch at http://127.0.0.1:{closed_port}: Connection refused.",
        "Check the URL (--url http://host:9200) or the Airflow connection, and that the server runs.",
    ]


def test_a_missing_airflow_connection_says_how_to_give_one(tmp_path):
    done = run_command("acme.com", "--conn-id", "no_such_conn")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and "no_such_conn" in lines[0] and lines[1].startswith("Pass --url http://host:9200"), lines


def test_a_bad_argument_is_two_lines_and_debug_shows_the_traceback(closed_port):
    done = run_command("acme.com", "--engine", "mongo")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 2 and "invalid choice: 'mongo'" in done.stderr
    done = run_command("acme.com", "--url", f"http://127.0.0.1:{closed_port}", "--debug")
    assert done.returncode == 2 and "Traceback" in done.stderr and "Connection refused" in done.stderr


def test_json_output_is_pure_json_with_the_logs_on_stderr(small_run, es_url):
    domain = sorted(small_run["domains"])[0]
    done = run_command(domain, "--url", es_url, "--engine", "osmem", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["subject"] == domain


def test_an_organisation_prints_its_ranking_over_all_of_its_domains(small_run, es_url, capsys):
    companies = {name: doc for name, doc in small_run["organizations"].items() if doc["kind"] == "company"}
    name, document = max(companies.items(), key=lambda item: (len(item[1]["accounts"]), item[0]))
    code, out, _ = who_knows(es_url, capsys, name, "--organization", "--json")
    assert code == 0
    result = json.loads(out)
    assert (result["kind"], result["domains"], result["messages"]) == ("organization", document["domains"],
                                                                       document["total_emails"])
    assert [(row["account"], row["strength"], row["messages"]) for row in result["ranked"]] == [
        (entry["account"], entry["strength"], entry["total_count"]) for entry in document["best_connected_accounts"]]
    for row in result["ranked"]:
        mine = [r for r in small_run["relationships"].values() if r["account"] == row["account"] and r["organization"] == name]
        assert row["relationships"] == len(mine) and row["latest"] == max(r["latest_engagement_date"] for r in mine)
    code, _, err = who_knows(es_url, capsys, "no-such-organisation.example", "--organization")
    assert code == 1 and "no organisation document" in err


def test_a_personal_provider_ranks_no_one_and_says_why():
    from mailforce.tools.who_knows import render

    text = render({"kind": "organization", "subject": "gmail.com", "organization_kind": "personal",
                   "domains": ["gmail.com"], "messages": 12, "addresses": 9, "accounts": 3,
                   "first": "2001-01-01T00:00:00Z", "latest": "2001-05-01T00:00:00Z", "ranked": []})
    assert "personal mail provider: nobody knows it as a whole" in text
