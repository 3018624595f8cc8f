"""People (issue 24 item 1): one person behind several addresses, by the rules providers document and
the operator's alias list, never guessed; `search-people` counted by distinct messages; `person_id` on
contacts and relationships; an alias change relabels exactly what it touches; erasing a person erases
every address of theirs. The oracle (tests/oracle.py) computes people on its own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from elasticsearch import helpers

from mailforce.core.dates import format_utc, parse_source_date
from mailforce.core.ids import document_id
from mailforce.core.people import (
    AliasChangeError,
    People,
    folded_address,
    parse_alias,
    parse_alias_change,
    suggest_aliases,
)
from mailforce.es import people as people_io
from mailforce.stages.change_aliases import apply_alias_change, list_suggestions, validate_change
from mailforce.stages.erase import erase
from mailforce.stages.reconcile import reconcile_window
from mailforce.tools import people as people_cli
from mailforce.tools import who_knows
from driver import run_once, run_stages
from oracle import Coverage, PersonModel, provider_mailbox
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, load_source, run, stored_aliases
from mailforce.core.run_params import parse_run_params

UTC = timezone.utc
EVERYTHING = Coverage(window_end=FAR_FUTURE_RUN_END)
LATER_RUN_END = datetime(2031, 1, 1, tzinfo=UTC)  # a run after the first, reading mail dated after it
LATER = Coverage(window_end=LATER_RUN_END)
WHO = {"reason": "ticket 24", "requested_by": "ops@kunaico.com"}


def mail(doc_id: str, account: str, date: str, sender: str, to: list[str], cc: list[str] | None = None,
         message_id: str | None = None) -> dict:
    source = {"account": account, "messageId": message_id or f"<{doc_id}@x>", "date": date,
              "from": {"address": sender}, "to": {"address": to}}
    if cc:
        source["cc"] = {"address": cc}
    return {"_id": doc_id, "_source": source}


# Jane Doe writes from three spellings of one Gmail mailbox; Jim from acme.com; Sue from two hosts of acme.com.
MAIL = [
    mail("m1", "ann", "2001-05-01T10:00:00Z", "ann@kunaico.com", ["J.Doe@Gmail.com"]),
    mail("m2", "ann", "2001-05-02T10:00:00Z", "jdoe+news@googlemail.com", ["ann@kunaico.com"]),
    # one mail naming two of Jane's addresses, seen by two mailboxes: one message for her
    mail("m3", "ann", "2001-05-03T10:00:00Z", "ann@kunaico.com", ["j.doe@gmail.com"], ["jdoe@gmail.com"]),
    mail("m3b", "bob", "2001-05-03T10:00:00Z", "ann@kunaico.com", ["j.doe@gmail.com", "bob@kunaico.com"],
         message_id="<m3@x>"),
    mail("m4", "bob", "2001-05-04T10:00:00Z", "jim.smith@acme.com", ["bob@kunaico.com"]),
    mail("m5", "bob", "2001-05-05T10:00:00Z", "bob@kunaico.com", ["jim.smith@acme.com", "sue@sales.acme.com"],
         ["sue@acme.com"]),
    mail("m6", "ann", "2001-06-01T10:00:00Z", "sue@acme.com", ["ann@kunaico.com"], ["jdoe@gmail.com"]),
    mail("m7", "ann", "2001-06-02T10:00:00Z", "x+tag@hotmail.com", ["ann@kunaico.com"], ["x@hotmail.com"]),
]
JANE = ("j.doe@gmail.com", "jdoe+news@googlemail.com", "jdoe@gmail.com")


def documents(es, index: str) -> dict[str, dict]:
    es.indices.refresh(index=index)
    return {hit["_id"]: hit["_source"] for hit in helpers.scan(es, index=index, query={"query": {"match_all": {}}})}


def person(es, settings, canonical: str) -> dict:
    return documents(es, settings.people_index)[document_id(canonical)]


# --- the pure part -------------------------------------------------------------------------------


def test_gmail_ignores_dots_and_tags_and_googlemail_is_gmail():
    assert folded_address("j.doe+news@googlemail.com") == ("jdoe@gmail.com", "gmail")
    assert folded_address("j.o.e@gmail.com") == ("joe@gmail.com", "gmail")
    assert folded_address("jdoe@gmail.com") == ("jdoe@gmail.com", None)


def test_sub_addressing_only_where_the_provider_documents_it():
    assert folded_address("x+tag@hotmail.com") == ("x@hotmail.com", "outlook")
    assert folded_address("x.y@outlook.com") == ("x.y@outlook.com", None)  # dots matter at Outlook.com
    assert folded_address("x+tag@fastmail.com") == ("x@fastmail.com", "fastmail")
    assert folded_address("x+tag@acme.com") == ("x+tag@acme.com", None)  # a company's server: not ours to guess
    assert folded_address("jdoe@mail.gmail.com") == ("jdoe@mail.gmail.com", None)  # the provider's domains only
    assert folded_address("+x@gmail.com") == ("+x@gmail.com", None)  # nothing left: kept as it is


def test_the_product_and_the_oracle_fold_alike():
    for address in ("a.b+c@googlemail.com", "x+y@hotmail.com", "p.q@outlook.com", "z+1@fastmail.com", "q@acme.com"):
        assert folded_address(address) == provider_mailbox(address), address


def test_the_alias_list_joins_groups_named_by_their_smallest_mailbox():
    people = People(tuple(sorted([parse_alias("jim.smith@acme.com=J.Doe@Gmail.com"),
                                  parse_alias("<jane@example.org>=jim.smith@acme.com")])))
    assert people.canonical_of("jdoe+x@googlemail.com") == "jane@example.org"
    assert people.person_of("jim.smith@acme.com") == document_id("jane@example.org")
    assert people.joined_by("jane@example.org") == "canonical"
    assert people.joined_by("jim.smith@acme.com") == "alias"
    assert People().joined_by("j.doe@gmail.com") == "provider"
    assert PersonModel.of(people.aliases).person_id("jdoe@gmail.com") == people.person_of("jdoe@gmail.com")


def test_a_bad_alias_change_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="address=address"):
        parse_alias("jim.smith@acme.com")
    with pytest.raises(AliasChangeError, match="nothing to change"):
        parse_alias_change({**WHO}, "2026-12-07T00:00:00Z")
    with pytest.raises(AliasChangeError, match="requested_by"):
        parse_alias_change({"add": ["a@b.com=c@d.com"], "reason": "r"}, "2026-12-07T00:00:00Z")
    with pytest.raises(AliasChangeError, match="'add'"):
        parse_alias_change({"add": ["a@b.com=a@b.com"], **WHO}, "2026-12-07T00:00:00Z")
    with pytest.raises(AliasChangeError, match="unknown field"):
        parse_alias_change({"add": ["a@b.com=c@d.com"], "force": True, **WHO}, "2026-12-07T00:00:00Z")


def test_the_same_local_part_on_two_hosts_of_an_organisation_is_suggested_not_applied():
    contacts = [{"email_address": "sue@acme.com", "domain": "acme.com", "organization": "acme.com"},
                {"email_address": "sue@sales.acme.com", "domain": "sales.acme.com", "organization": "acme.com"},
                {"email_address": "sue@globex.org", "domain": "globex.org", "organization": "globex.org"}]
    (suggestion,) = suggest_aliases(contacts, People())
    assert suggestion.addresses == ("sue@acme.com", "sue@sales.acme.com")
    assert suggestion.aliases() == ["sue@sales.acme.com=sue@acme.com"]
    joined = People((("sue@sales.acme.com", "sue@acme.com"),))
    assert suggest_aliases(contacts, joined) == []  # already one person: nothing left to suggest


# --- against the engine --------------------------------------------------------------------------


def test_a_person_counts_a_mail_naming_two_of_their_addresses_once(es, settings):
    load_source(es, settings, MAIL)
    run(es, settings, "people-1")
    expected = assert_matches_oracle(es, settings, MAIL, [EVERYTHING])
    jane = person(es, settings, "jdoe@gmail.com")
    assert jane["addresses"] == sorted(JANE)
    assert (jane["total_count"], jane["from_count"], jane["to_count"], jane["cc_count"]) == (4, 1, 2, 2)
    assert sum(expected["contacts"][address]["total_count"] for address in JANE) == 5  # the sum would count m3 twice
    assert jane["accounts"] == ["ann", "bob"]
    assert {entry["joined_by"] for entry in jane["explanation"]} == {"canonical", "provider"}
    assert {entry["account"]: entry["total_count"] for entry in jane["best_connected_accounts"]} == {"ann": 4, "bob": 1}
    contacts = documents(es, settings.contacts_index)
    assert {contacts[document_id(address)]["person_id"] for address in JANE} == {document_id("jdoe@gmail.com")}
    hotmail = person(es, settings, "x@hotmail.com")
    assert hotmail["addresses"] == ["x+tag@hotmail.com", "x@hotmail.com"] and hotmail["total_count"] == 1
    assert len(expected["people"]) == len(expected["contacts"]) - 3  # jane's three and x's two are two people


def test_an_alias_joins_across_organisations_then_its_removal_restores_every_document(es, settings):
    load_source(es, settings, MAIL)
    run(es, settings, "people-1")
    before = documents(es, settings.people_index)
    record = apply_alias_change(es, settings, validate_change(
        {"add": ["Jim Smith <jim.smith@acme.com>=j.doe@gmail.com"], **WHO}))
    assert record["addresses_relabelled"] == 1  # only Jim's documents get another person_id
    assert record["people_written"] == 1 and record["people_deleted"] == 1  # Jane grew; Jim's own person went
    assert_matches_oracle(es, settings, MAIL, [EVERYTHING])
    jane = person(es, settings, "jdoe@gmail.com")
    assert jane["addresses"] == sorted([*JANE, "jim.smith@acme.com"])
    assert jane["organizations"] == ["acme.com", "gmail.com", "googlemail.com"] and jane["total_count"] == 6
    assert document_id("jim.smith@acme.com") not in documents(es, settings.people_index)
    relationships = [document for document in documents(es, settings.relationships_index).values()
                     if document["email_address"] == "jim.smith@acme.com"]
    assert relationships and {document["person_id"] for document in relationships} == {document_id("jdoe@gmail.com")}
    audits = documents(es, settings.aliases_audit_index)
    assert audits[record["change_id"]]["requested_by"] == "ops@kunaico.com"
    assert audits[record["change_id"]]["added"] == ["jim.smith@acme.com=j.doe@gmail.com"]
    known = who_knows.answer(es, settings, "Jim.Smith@acme.com", person=True)  # any address of the person
    assert known["subject"] == "jdoe@gmail.com" and known["messages"] == 6
    assert {row["account"]: row["relationships"] for row in known["ranked"]} == {"ann": 3, "bob": 2}

    apply_alias_change(es, settings, validate_change({"remove": ["jim.smith@acme.com"], **WHO}))
    assert_matches_oracle(es, settings, MAIL, [EVERYTHING])
    after = documents(es, settings.people_index)
    strip = lambda stored: {key: {k: v for k, v in value.items() if k != "updated_at"} for key, value in stored.items()}
    assert strip(after) == strip(before)


def test_a_suggestion_is_accepted_in_one_step_from_the_command_line(es, settings, capsys):
    load_source(es, settings, MAIL)
    run(es, settings, "people-1")
    (suggestion,) = list_suggestions(es, settings)
    assert suggestion.addresses == ("sue@acme.com", "sue@sales.acme.com")
    assert people_cli.main(["suggestions"], es=es) == 0
    assert suggestion.suggestion_id in capsys.readouterr().out
    assert people_cli.main(["change", "--accept", suggestion.suggestion_id, "--reason", "same Sue",
                            "--requested-by", "ops"], es=es) == 0
    assert "1 added" in capsys.readouterr().out
    assert_matches_oracle(es, settings, MAIL, [EVERYTHING])
    sue = person(es, settings, "sue@acme.com")
    assert sue["addresses"] == ["sue@acme.com", "sue@sales.acme.com"] and sue["total_count"] == 2
    assert list_suggestions(es, settings) == []
    assert people_cli.main(["show", "sue@sales.acme.com", "--json"], es=es) == 0
    assert '"canonical_address": "sue@acme.com"' in capsys.readouterr().out
    assert people_cli.main(["change", "--accept", "nosuchid", "--reason", "r", "--requested-by", "ops"], es=es) == 2
    assert "no current suggestion 'nosuchid'" in capsys.readouterr().err


@pytest.mark.extraction_slices(1, 2, 8)
def test_windows_late_mail_and_a_failed_run_keep_people_exact(es, settings):
    """An alias recorded before any mail; mail added in windows, a run that dies after one partition,
    then mail indexed late that only the reconciliation finds: after each, the oracle's people."""
    apply_alias_change(es, settings, validate_change({"add": ["jim.smith@acme.com=jdoe@gmail.com"], **WHO}))
    early, late = MAIL[:-2], MAIL[-2:]
    load_source(es, settings, early[:3])
    run(es, settings, "w1", run_end=datetime(2001, 5, 2, 12, tzinfo=UTC))
    assert_matches_oracle(es, settings, early[:3], [Coverage(window_end=datetime(2001, 5, 2, 12, tzinfo=UTC))])
    load_source(es, settings, early[3:])
    with pytest.raises(RuntimeError, match="simulated failure"):
        run_once(es, settings, parse_run_params({}, {}), FAR_FUTURE_RUN_END, "w2-dies", stop_after_partitions=1)
    run(es, settings, "w2")
    assert_matches_oracle(es, settings, early, [EVERYTHING])
    assert person(es, settings, "jdoe@gmail.com")["total_count"] == 5
    load_source(es, settings, late)  # dated long before the watermark: only the reconciliation counts them
    run_stages(es, settings, reconcile_window(es, settings), "reconcile-1")
    assert_matches_oracle(es, settings, MAIL, [EVERYTHING])
    assert person(es, settings, "jdoe@gmail.com")["total_count"] == 6


def test_the_people_stage_rereads_from_the_last_runs_end_and_needs_no_more_without_clock_skew(
        es, settings, monkeypatch):
    """With no clock margin at all (one process, one clock), re-reading only what was written after the
    last successful run ended still keeps people exact through a run that dies between partitions:
    that run's own people stage came after everything it wrote."""
    monkeypatch.setattr(people_io, "CLOCK_MARGIN", timedelta(0))
    apply_alias_change(es, settings, validate_change({"add": ["jim.smith@acme.com=jdoe@gmail.com"], **WHO}))
    early = MAIL[:-2]
    load_source(es, settings, early[:3])
    first = run(es, settings, "w1", run_end=datetime(2001, 5, 2, 12, tzinfo=UTC))
    assert people_io.people_since(es, settings) == format_utc(parse_source_date(first["run_date"]))
    load_source(es, settings, early[3:])
    with pytest.raises(RuntimeError, match="simulated failure"):
        run_once(es, settings, parse_run_params({}, {}), FAR_FUTURE_RUN_END, "w2-dies", stop_after_partitions=1)
    assert people_io.people_since(es, settings) == format_utc(parse_source_date(first["run_date"]))  # a failed run publishes nothing
    second = run(es, settings, "w2")
    assert_matches_oracle(es, settings, early, [EVERYTHING])
    assert person(es, settings, "jdoe@gmail.com")["total_count"] == 5
    monkeypatch.setattr(people_io, "CLOCK_MARGIN", timedelta(hours=1))
    assert people_io.people_since(es, settings) == format_utc(parse_source_date(second["run_date"]) - timedelta(hours=1))


def test_erasing_a_person_erases_every_address_of_theirs(es, settings):
    load_source(es, settings, MAIL)
    run(es, settings, "people-1")
    apply_alias_change(es, settings, validate_change({"add": ["jim.smith@acme.com=jdoe@gmail.com"], **WHO}))
    record = erase(es, settings, {"people": ["J.Doe+x@googlemail.com"], **WHO})
    erased = sorted([*JANE, "jim.smith@acme.com"])
    assert record["addresses"] == sorted([*erased, "j.doe+x@googlemail.com"])
    assert record["people"] == ["j.doe+x@googlemail.com"]
    assert record["removed"]["people"] == 1 and record["removed"]["contacts"] == 4
    expected = assert_matches_oracle(es, settings, MAIL, [EVERYTHING], erased_addresses=erased)
    assert document_id("jdoe@gmail.com") not in documents(es, settings.people_index)
    assert not set(erased) & set(expected["contacts"])
    run(es, settings, "people-2")  # later runs never bring them back
    assert_matches_oracle(es, settings, MAIL, [EVERYTHING], erased_addresses=erased)


YAHOO = [  # Yahoo documents no folding rule: john.doe+x@yahoo.com is an address of its own
    mail("y1", "bob", "2001-05-06T10:00:00Z", "john.doe@yahoo.com", ["bob@kunaico.com"]),
    mail("y2", "bob", "2001-05-07T10:00:00Z", "john.doe+x@yahoo.com", ["bob@kunaico.com"], ["x@outlook.com"]),
]
# after the erasure: every folded spelling of the erased mailboxes, and spellings of other mailboxes
FOLDED_LATER = ["JDoe+later@GoogleMail.com", "j.d.o.e@gmail.com", "jdoe+x@gmail.com", "x+later@hotmail.com",
                "john.doe@yahoo.com"]
KEPT_LATER = ["john.doe+x@yahoo.com", "jdoe@hotmail.com", "x@outlook.com", "j.doe.x@gmail.com"]


def test_erasing_an_address_erases_every_spelling_of_its_mailbox_and_no_other(es, settings):
    source = MAIL + YAHOO
    load_source(es, settings, source)
    run(es, settings, "people-1")
    erased = ["J.Doe@Gmail.com", "x@hotmail.com", "john.doe@yahoo.com"]
    record = erase(es, settings, {"addresses": erased, **WHO})
    assert record["addresses"] == sorted(address.lower() for address in erased)  # as requested, normalised
    # the stored spellings of the erased mailboxes went too: Jane's three, x's two, john.doe@yahoo.com
    assert record["removed"]["contacts"] == 6 and record["removed"]["people"] == 3
    expected = assert_matches_oracle(es, settings, source, [EVERYTHING], erased_addresses=erased)
    assert not {*JANE, "x+tag@hotmail.com", "x@hotmail.com", "john.doe@yahoo.com"} & set(expected["contacts"])
    assert {"john.doe+x@yahoo.com", "x@outlook.com"} <= set(expected["contacts"])

    later = [mail(f"later-{number}", "ann", f"2030-06-0{number + 1}T10:00:00Z", sender,
                  ["ann@kunaico.com"]) for number, sender in enumerate(FOLDED_LATER + KEPT_LATER)]
    load_source(es, settings, later)
    run(es, settings, "people-2", LATER_RUN_END)  # later runs never bring them back
    late = [mail("late-1", "bob", "2001-07-01T10:00:00Z", "jdoe+late@googlemail.com", ["bob@kunaico.com"],
                 ["john.doe+late@yahoo.com"])]
    load_source(es, settings, late)  # dated long before the watermark: only the reconciliation reads it
    run_stages(es, settings, reconcile_window(es, settings), "reconcile-1")
    everything = source + later + late
    expected = assert_matches_oracle(es, settings, everything, [LATER], erased_addresses=erased)
    contacts = set(expected["contacts"])
    assert not {"jdoe+later@googlemail.com", "jdoe@gmail.com", "jdoe+x@gmail.com", "jdoe+late@googlemail.com",
                "x+later@hotmail.com", "john.doe@yahoo.com"} & contacts
    assert {*KEPT_LATER, "john.doe+late@yahoo.com"} <= contacts
    assert document_id("jdoe@gmail.com") not in documents(es, settings.people_index)
    assert document_id("jdoex@gmail.com") in documents(es, settings.people_index)  # another mailbox


def test_erasing_an_address_removes_its_alias_entries_so_no_person_is_named_after_it(es, settings):
    load_source(es, settings, MAIL)
    run(es, settings, "people-1")
    # no mail names a.sue@acme.com, yet as the smallest address of the group it names Sue's person
    apply_alias_change(es, settings, validate_change({"add": ["sue@acme.com=a.sue@acme.com",
                                                              "sue@sales.acme.com=sue@acme.com"], **WHO}))
    assert person(es, settings, "a.sue@acme.com")["addresses"] == ["sue@acme.com", "sue@sales.acme.com"]
    erase(es, settings, {"addresses": ["a.sue@acme.com"], **WHO})
    assert stored_aliases(es, settings) == [("sue@sales.acme.com", "sue@acme.com")]
    expected = assert_matches_oracle(es, settings, MAIL, [EVERYTHING], erased_addresses=["a.sue@acme.com"])
    assert expected["people"]["sue@acme.com"]["addresses"] == ["sue@acme.com", "sue@sales.acme.com"]
    assert document_id("a.sue@acme.com") not in documents(es, settings.people_index)


def test_outputs_from_before_people_are_labelled_and_every_person_built_by_the_next_run(es, settings):
    load_source(es, settings, MAIL)
    run(es, settings, "before-people")
    for index in (settings.contacts_index, settings.relationships_index):  # as data model 3 wrote them
        stripped = [(identifier, {key: value for key, value in source.items() if key != "person_id"})
                    for identifier, source in documents(es, index).items()]
        helpers.bulk(es, ({"_index": index, "_id": identifier, "_source": source} for identifier, source in stripped))
    es.delete_by_query(index=settings.people_index, query={"match_all": {}}, refresh=True)
    assert documents(es, settings.people_index) == {}
    stats = run(es, settings, "upgrading")
    assert stats["documents_written"]["people"] == len(documents(es, settings.people_index)) > 0
    assert_matches_oracle(es, settings, MAIL, [EVERYTHING])


# --- the DAG ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def people_dag():
    import os

    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    db.resetdb()
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    return bag.dags["mailforce_people"]


@pytest.fixture
def connection_to_engine(es_url, monkeypatch):
    import json

    host, port = es_url.rsplit("//", 1)[1].split(":")
    monkeypatch.setenv("AIRFLOW_CONN_ELASTICSEARCH_DEFAULT", json.dumps(
        {"conn_type": "elasticsearch", "host": host, "port": int(port), "schema": "http", "extra": {"engine": "osmem"}}))


def test_the_people_dag_is_a_form_that_changes_the_alias_list_exactly(people_dag, connection_to_engine, es, settings):
    assert people_dag.schedule is None or str(people_dag.timetable.summary).lower() in ("none", "never")
    assert people_dag.max_active_runs == 1
    for name in ("add", "remove", "accept_suggestions", "reason", "requested_by"):
        assert people_dag.params.get_param(name).schema.get("title"), name
    load_source(es, settings, MAIL)
    run(es, settings, "people-1")
    refused = people_dag.test(run_conf={"add": ["not an address=jdoe@gmail.com"], **WHO})
    assert refused.state == "failed"
    assert not es.indices.exists(index=settings.aliases_index)  # refused before any write
    dag_run = people_dag.test(run_conf={"add": ["jim.smith@acme.com=jdoe@gmail.com"], **WHO})
    assert dag_run.state == "success"
    assert_matches_oracle(es, settings, MAIL, [EVERYTHING])
    assert person(es, settings, "jdoe@gmail.com")["addresses_count"] == 4
    assert len(documents(es, settings.aliases_audit_index)) == 1


# --- display names -------------------------------------------------------------------------------


def test_first_last_and_flast_under_one_display_name_are_suggested():
    names = {"jim.smith@acme.com": {"jim smith"}, "jsmith@acme-mail.com": {"jim smith"},
             "jsmith@other.org": {"jane smith"}, "j.smith@acme.com": {"jim smith"}}
    (suggestion,) = suggest_aliases([], People(), names)
    assert suggestion.rule == "first_last_and_flast_with_one_display_name"
    assert suggestion.addresses == ("jim.smith@acme.com", "jsmith@acme-mail.com")
    assert "'jim smith'" in suggestion.evidence
    joined = People((("jsmith@acme-mail.com", "jim.smith@acme.com"),))
    assert suggest_aliases([], joined, names) == []


NAMED = MAIL + [
    mail("n1", "ann", "2001-06-03T10:00:00Z", '"Jim Smith" <Jim.Smith@acme.com>', ["ann@kunaico.com"]),
    mail("n2", "bob", "2001-06-04T10:00:00Z", "Jim  Smith <jsmith@acme-mail.com>", ["bob@kunaico.com"]),
]


def test_display_names_kept_by_the_roles_documents_make_a_suggestion_and_go_with_an_erasure(es, settings):
    load_source(es, settings, NAMED)
    run(es, settings, "named")
    assert_matches_oracle(es, settings, NAMED, [EVERYTHING])
    roles = {source["message_id"]: source for source in documents(es, settings.roles_index).values()}
    assert roles["<n1@x>"]["display_names"] == [{"email_address": "jim.smith@acme.com", "name": "jim smith"}]
    assert "display_names" not in roles["<m4@x>"]  # no name in its header: the document is as before
    (suggestion,) = [entry for entry in list_suggestions(es, settings) if entry.rule.startswith("first_last")]
    assert suggestion.addresses == ("jim.smith@acme.com", "jsmith@acme-mail.com")
    apply_alias_change(es, settings, validate_change({"accept_suggestions": [suggestion.suggestion_id], **WHO}))
    assert person(es, settings, "jim.smith@acme.com")["addresses"] == ["jim.smith@acme.com", "jsmith@acme-mail.com"]
    assert_matches_oracle(es, settings, NAMED, [EVERYTHING])
    erase(es, settings, {"addresses": ["jsmith@acme-mail.com"], **WHO})
    roles = {source["message_id"]: source for source in documents(es, settings.roles_index).values()}
    assert "display_names" not in roles["<n2@x>"]  # the erased address's name went with it
    assert stored_aliases(es, settings) == []
    assert_matches_oracle(es, settings, NAMED, [EVERYTHING], erased_addresses=["jsmith@acme-mail.com"])
