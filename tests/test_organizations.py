"""Organisations (issue 23 items 1 and 2): a domain's organisation is its registrable domain under the
Public Suffix List unless the operator overrides it; `search-organizations` holds the domain
document's figures over every host of an organisation, exact on either path of the compile and after
the overrides change; personal mail providers rank no accounts."""

from __future__ import annotations

import random
from datetime import date, datetime, timezone

import pytest

from mailforce.core.automated import AddressClassifier
from mailforce.core.org_rollups import (
    OrganizationRollup,
    add_organizations,
    finished_organizations,
    window_organizations,
)
from mailforce.core.rollups import (
    Scoring,
    add_to_stored,
    finished_documents,
    flipped_to_automated,
    natural_key,
    window_documents,
)

from mailforce.core.organizations import (
    COMPANY,
    PERSONAL,
    Organizations,
    organization_chunks,
    parse_overrides,
    partitions_by_organization,
    psl_version,
)
from mailforce.settings import Settings, SettingsError
from oracle import Coverage, OrganizationModel, public_suffix_list_version, read_outputs, registrable_domain
from support import (
    FAR_FUTURE_RUN_END,
    assert_matches_oracle,
    index_names,
    raw_outputs,
    run,
    with_settings,
)

EVERYTHING = Coverage(window_end=FAR_FUTURE_RUN_END)
UTC = timezone.utc
OVERRIDES = ("ect.enron.com=ect.enron.com", "usgen.com=pge.com")  # a host its own organisation; two joined


# --- the pure part -------------------------------------------------------------------------------


def test_a_domain_belongs_to_its_registrable_domain_unless_it_has_none():
    organizations = Organizations()
    assert organizations.organization_of("ect.enron.com") == "enron.com"
    assert organizations.organization_of("abag.ca.gov") == "ca.gov"
    assert organizations.organization_of("mail.acme.co.uk") == "acme.co.uk"
    assert organizations.organization_of("co.uk") == "co.uk"  # a public suffix is its own organisation
    assert organizations.organization_of("xacme.com") == "xacme.com"


def test_an_override_makes_a_host_and_the_hosts_under_it_their_own_organisation_or_joins_two():
    organizations = Organizations(parse_overrides(["abag.ca.gov=abag.ca.gov", "enron.net=enron.com",
                                                   "x.abag.ca.gov=x.abag.ca.gov"]))
    assert organizations.organization_of("abag.ca.gov") == "abag.ca.gov"
    assert organizations.organization_of("mail.abag.ca.gov") == "abag.ca.gov"
    assert organizations.organization_of("y.x.abag.ca.gov") == "x.abag.ca.gov"  # the longest host wins
    assert organizations.organization_of("cpuc.ca.gov") == "ca.gov"
    assert organizations.organization_of("mail.enron.net") == "enron.com"
    assert organizations.fingerprint != Organizations().fingerprint


def test_overrides_are_checked_and_named_in_the_error():
    assert Settings(organization_overrides=(" ABAG.ca.gov = abag.ca.gov ",)).organization_overrides == (
        "abag.ca.gov=abag.ca.gov",)
    for wrong in (("abag.ca.gov",), ("abag.ca.gov=",), ("localhost=acme.com",), ("a.com=b.com", "a.com=c.com")):
        with pytest.raises(SettingsError, match="organization_overrides"):
            Settings(organization_overrides=wrong)


def test_free_mail_providers_are_personal_and_the_others_companies():
    organizations = Organizations()
    assert [organizations.kind_of(name) for name in ("gmail.com", "aol.com", "yahoo.com", "enron.com")] == [
        PERSONAL, PERSONAL, PERSONAL, COMPANY]


def test_the_oracle_reads_the_same_list_on_its_own_and_agrees():
    assert public_suffix_list_version() == psl_version() != "unknown"
    model, product = OrganizationModel.of(["abag.ca.gov=abag.ca.gov"]), Organizations(
        parse_overrides(["abag.ca.gov=abag.ca.gov"]))
    for domain in ("ect.enron.com", "abag.ca.gov", "a.b.co.uk", "city.kawasaki.jp", "x.city.kawasaki.jp",
                   "a.kawasaki.jp", "foo.bar.unknowntld", "10.0.0.1", "a.xn--p1ai", "b.a.рф", "gmail.com"):
        assert model.organization(domain) == product.organization_of(domain), domain
        assert model.kind(model.organization(domain)) == product.kind_of(product.organization_of(domain))
    assert registrable_domain("co.uk") is None


def test_every_host_of_an_organisation_lands_in_one_partition_and_one_chunk():
    work = {"ect.enron.com": 50, "enron.com": 40, "mailman.enron.com": 1, "pge.com": 30, "b.pge.com": 30,
            "gmail.com": 60, "x.org": 5, "y.org": 5}
    organizations = Organizations()
    partitions = partitions_by_organization(work, organizations, max_partitions=4)
    owner = {}
    for partition in partitions:
        for domain in partition.domains:
            owner.setdefault(organizations.organization_of(domain), set()).add(partition.number)
        assert partition.work == sum(partition.work_by_domain.values())
    assert sorted(domain for partition in partitions for domain in partition.domains) == sorted(work)
    assert all(len(numbers) == 1 for numbers in owner.values())
    chunks = list(organization_chunks(sorted(work), organizations, work, budget=60, size=3))
    for chunk in chunks:
        assert {organizations.organization_of(domain) for domain in chunk} .isdisjoint(
            {organizations.organization_of(domain) for other in chunks if other is not chunk for domain in other})


def test_the_oracles_organisation_documents_by_hand():
    from oracle import expected_outputs

    def message(doc_id, account, message_id, when, sender, to=(), cc=()):
        return {"_id": doc_id, "_source": {"account": account, "messageId": message_id, "date": when,
                                           "from": {"address": sender}, "to": {"address": list(to)},
                                           "cc": {"address": list(cc)}}}

    source = [
        message("1", "ann", "<m1@x>", "2001-01-05T10:00:00Z", "jim@mail.acme.com", ["sue@acme.com"], ["bob@gmail.com"]),
        message("2", "bob", "<m1@x>", "2001-01-04T10:00:00Z", "jim@mail.acme.com", ["sue@acme.com"]),
        message("3", "ann", "<m2@x>", "2001-02-10T10:00:00Z", "sue@acme.com"),
    ]
    outputs = expected_outputs(source, [EVERYTHING], kinds="all", scoring_date=date(2001, 2, 10))
    acme = outputs["organizations"]["acme.com"]
    ann = max(outputs["relationships"][("ann", "jim@mail.acme.com")]["strength"],
              outputs["relationships"][("ann", "sue@acme.com")]["strength"])
    bob = max(outputs["relationships"][("bob", "jim@mail.acme.com")]["strength"],
              outputs["relationships"][("bob", "sue@acme.com")]["strength"])
    # ann's owner is sue@acme.com (on both of her messages); jim wrote to her on m1 (audience 2: 0.5),
    # one way, 36 days before the scoring date: 100*0.5/5.5*0.5*0.5**(36/90) = 3.44, rounded 3. bob's
    # one message names three addresses once each: a tie, no owner, no direct exchange, strength 0.
    assert (ann, bob) == (3, 0)
    assert {key: value for key, value in acme.items() if key != "email_engagements"} == {
        "organization": "acme.com", "kind": "company", "domains": ["acme.com", "mail.acme.com"], "domains_count": 2,
        "first_contact_date": "2001-01-04T10:00:00Z", "latest_contact_date": "2001-02-10T10:00:00Z",
        "total_from": 2, "total_to": 1, "total_cc": 0, "total_emails": 2,  # m1 names both hosts: once
        "accounts": ["ann", "bob"], "accounts_count": 2, "addresses_count": 2, "email_engagements_complete": True,
        "account_connections": [{"account": "ann", "strength": 3, "total_count": 2},
                                {"account": "bob", "strength": 0, "total_count": 1}],
        "best_connected_accounts": [{"account": "ann", "strength": 3, "total_count": 2},
                                    {"account": "bob", "strength": 0, "total_count": 1}],
    }
    assert [entry["email_address"] for entry in acme["email_engagements"]] == ["sue@acme.com", "jim@mail.acme.com"]
    gmail = outputs["organizations"]["gmail.com"]
    assert gmail["kind"] == "personal" and "best_connected_accounts" not in gmail
    assert "best_connected_accounts" not in outputs["domains"]["gmail.com"]
    assert outputs["contacts"]["bob@gmail.com"]["best_connected_accounts"][0]["account"] == "ann"
    assert outputs["domains"]["mail.acme.com"]["organization"] == "acme.com"
    assert outputs["relationships"][("ann", "bob@gmail.com")]["organization_kind"] == "personal"
    months = {key: (doc["messages"], doc["from_count"], doc["to_count"], doc["cc_count"])
              for key, doc in outputs["timeline"].items() if key[0] == "organization"}
    assert months == {("organization", "acme.com", "2001-01-01T00:00:00Z"): (1, 1, 1, 0),
                      ("organization", "acme.com", "2001-02-01T00:00:00Z"): (1, 1, 0, 0),
                      ("organization", "gmail.com", "2001-01-01T00:00:00Z"): (1, 0, 0, 1)}


# --- adding a window equals recomputing over all time (pure, seeded) ------------------------------

SCORING = Scoring(scoring_date=date(2002, 1, 15), half_life_days=90,
                  is_automated_address=AddressClassifier().is_automated, top_addresses=3)
HOSTS = ["acme.com", "mail.acme.com", "eu.acme.com", "globex.com", "gmail.com", "googlemail.com"]
ALL_KINDS = ("engagements", "relationships", "contacts", "timeline", "domains", "organizations")


def random_mail(rng: random.Random, messages: int) -> list[list[dict]]:
    """Groups of roles documents (the copies of one message id across accounts), over several
    hosts of one organisation, so that one mail often names two hosts of it."""
    groups = []
    for number in range(messages):
        copies, key_date = [], None
        for account in rng.sample(["ann", "bob", "cid"], rng.choice([1, 1, 2, 3])):
            message_date = f"2001-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
            key_date = message_date if key_date is None else min(key_date, message_date)
            entries = {(f"{rng.choice(['jim', 'sue', 'no-reply', 'kay', 'lee'])}@{rng.choice(HOSTS)}",
                        rng.choice(["From", "To", "CC"])) for _ in range(rng.randint(1, 4))}
            copies.append({"account": account, "message_id": f"<m{number}@x>", "date": message_date,
                           "message_roles": [{"email_address": a, "domain": a.split("@")[1], "role": r}
                                             for a, r in sorted(entries)],
                           "automated_addresses": [a for a, _ in entries if a == "kay@globex.com" and rng.random() < 0.05]})
        for copy in copies:
            copy["key_date"] = key_date
        groups.append(copies)
    return groups


def organization_rollup(groups, window_only: bool = False) -> OrganizationRollup:
    rollup = OrganizationRollup(HOSTS, Organizations(), window_only=window_only)
    for copies in groups:
        rollup.add_message(copies)
    return rollup


def recomputed(groups) -> dict:
    rollup = organization_rollup(groups)
    documents = finished_documents(rollup, SCORING)
    finished_organizations(rollup, documents, SCORING)
    return {kind: {natural_key(kind, doc): doc for doc in getattr(documents, kind)} for kind in ALL_KINDS}


def added(stored: dict, window_groups, *, window_only: bool = True) -> tuple[dict, set[str]]:
    """The window added to `stored` as the compile does; returns the merged documents and the
    organisations the add path sends to recomputation (new mail flagged a known address)."""
    organizations = Organizations()
    rollup = organization_rollup(window_groups, window_only=window_only)
    new = window_documents(rollup)
    flipped = {organizations.organization_of(domain) for domain in flipped_to_automated(new, stored, SCORING)}
    new_organizations = window_organizations(rollup, new["contacts"], stored["contacts"])
    new = {kind: [doc for doc in docs if organizations.organization_of(doc["domain"]) not in flipped]
           for kind, docs in new.items()}
    new_organizations = {name: [doc for doc in docs if doc["organization"] not in flipped] if isinstance(docs, list)
                         else docs for name, docs in new_organizations.items()}
    documents = add_to_stored(new, stored, SCORING)
    add_organizations(new_organizations, stored, documents, organizations, SCORING)
    merged = {kind: dict(stored[kind]) for kind in ALL_KINDS}
    for kind in ALL_KINDS:
        merged[kind].update({natural_key(kind, doc): doc for doc in getattr(documents, kind)})
    return merged, flipped


def outside(documents: dict, flipped: set[str]) -> dict:
    organizations = Organizations()
    return {kind: {key: doc for key, doc in docs.items()
                   if (doc.get("organization") or organizations.organization_of(doc["domain"])) not in flipped}
            for kind, docs in documents.items()}


@pytest.mark.parametrize("seed", range(6))
def test_adding_a_window_to_stored_organisations_equals_recomputing_over_all_time(seed):
    rng = random.Random(seed)
    groups = random_mail(rng, 140)
    cut = rng.randint(20, 110)
    merged, flipped = added(recomputed(groups[:cut]), groups[cut:], window_only=False)
    expected = recomputed(groups)
    assert expected["organizations"][("acme.com",)]["domains_count"] == 3
    assert "best_connected_accounts" not in expected["organizations"][("gmail.com",)]
    assert len(outside(expected, flipped)["organizations"]) >= 2  # a real comparison
    for kind in ALL_KINDS:
        assert outside(merged, flipped)[kind] == outside(expected, flipped)[kind], kind


@pytest.mark.parametrize("seed", range(6))
def test_late_copies_counted_elsewhere_keep_organisations_exact(seed):
    from test_rollups import hold_back_late_copies

    rng = random.Random(200 + seed)
    groups = random_mail(rng, 150)
    cut = rng.randint(60, 120)
    late = hold_back_late_copies(rng, groups[:cut])
    assert late
    merged, flipped = added(recomputed(groups[:cut]), groups[cut:] + [[copy] for copy in late])
    late_of = {copy["message_id"]: copy for copy in late}
    whole = [copies + ([late_of[copies[0]["message_id"]]] if copies[0]["message_id"] in late_of else [])
             for copies in groups]
    expected = recomputed(whole)
    for kind in ALL_KINDS:
        assert outside(merged, flipped)[kind] == outside(expected, flipped)[kind], kind


# --- the pipeline against the oracle --------------------------------------------------------------


def test_organisation_figures_count_messages_once_across_hosts(enron_run):
    expected = assert_matches_oracle(enron_run.es, enron_run.settings, enron_run.source, [EVERYTHING])
    enron_org = expected["organizations"]["enron.com"]
    hosts = [expected["domains"][host] for host in enron_org["domains"]]
    assert enron_org["domains_count"] >= 5 and "ect.enron.com" in enron_org["domains"]
    # distinct messages across hosts: fewer than the hosts' totals added up (a mail names several)
    assert enron_org["total_emails"] < sum(host["total_emails"] for host in hosts)
    assert enron_org["addresses_count"] == sum(host["addresses_count"] for host in hosts)
    assert all(expected["domains"][host]["organization"] == "enron.com" for host in enron_org["domains"])
    months = [doc for key, doc in expected["timeline"].items() if key[:2] == ("organization", "enron.com")]
    assert sum(month["messages"] for month in months) == enron_org["total_emails"]


def test_personal_providers_rank_no_accounts_but_their_people_do(enron_run):
    actual = read_outputs(enron_run.es, index_names(enron_run.settings))
    personal = {name: doc for name, doc in actual["organizations"].items() if doc["kind"] == "personal"}
    assert {"aol.com", "yahoo.com", "hotmail.com"} <= set(personal)
    assert all("best_connected_accounts" not in doc for doc in personal.values())
    assert all("best_connected_accounts" in doc for doc in actual["organizations"].values() if doc["kind"] == "company")
    for domain, document in actual["domains"].items():
        assert ("best_connected_accounts" in document) == (document["organization_kind"] == "company"), domain
    aol_contacts = [doc for doc in actual["contacts"].values() if doc["organization"] == "aol.com"]
    assert aol_contacts and all(doc["best_connected_accounts"] for doc in aol_contacts)
    assert all(doc["organization_kind"] == "personal" for doc in aol_contacts)


def test_windows_added_to_stored_organisations_and_rescored_days_later_equal_the_oracle(es, settings, enron):
    ends = [datetime(2000, 6, 30, tzinfo=UTC), datetime(2001, 3, 31, tzinfo=UTC), datetime(2001, 10, 31, tzinfo=UTC),
            datetime(2001, 12, 31, tzinfo=UTC)]
    for number, end in enumerate(ends):
        run(es, settings, f"window-{number}", run_end=end)
    expected = assert_matches_oracle(es, settings, enron, [Coverage(window_end=ends[-1])])
    assert any(entry["strength"] > 20 for doc in expected["organizations"].values()
               for entry in doc["account_connections"])  # strengths that time can still change
    later = datetime(2002, 1, 20, tzinfo=UTC)
    run(es, settings, "weeks-later", run_end=later)  # new days: rescored organisations, a little new mail
    assert_matches_oracle(es, settings, enron, [Coverage(window_end=later)])


def test_changing_the_overrides_regroups_exactly_and_back(es, settings, enron):
    run(es, settings, "plain")
    assert_matches_oracle(es, settings, enron, [EVERYTHING])
    overridden = with_settings(settings, organization_overrides=OVERRIDES)
    run(es, overridden, "overridden")  # no new mail: only the regrouping
    expected = assert_matches_oracle(es, overridden, enron, [EVERYTHING])
    assert "usgen.com" not in expected["organizations"]  # joined into pge.com: its document is gone
    assert "usgen.com" in expected["organizations"]["pge.com"]["domains"]
    assert expected["organizations"]["ect.enron.com"]["domains"] == ["ect.enron.com"]
    assert "ect.enron.com" not in expected["organizations"]["enron.com"]["domains"]
    stats = es.search(index=settings.runtime_stats_index, size=10, sort=[{"run_date": "desc"}])["hits"]["hits"]
    assert stats[0]["_source"]["organization_overrides"] == sorted(OVERRIDES)
    assert stats[0]["_source"]["public_suffix_list_version"] == psl_version()
    assert stats[0]["_source"]["organizations_changed"] is True  # the audit trail: what changed, when
    assert stats[0]["_source"]["previous_organization_overrides"] == []
    assert "organizations_changed" not in stats[1]["_source"]
    run(es, settings, "plain-again")
    assert_matches_oracle(es, settings, enron, [EVERYTHING])
    before = raw_outputs(es, settings)
    run(es, settings, "nothing-changed")  # the fingerprint is the last run's: nothing is regrouped
    after = raw_outputs(es, settings)
    organizations_index = settings.organizations_index
    assert {key: {k: v for k, v in doc.items() if k != "updated_at"} for key, doc in before[organizations_index].items()} \
        == {key: {k: v for k, v in doc.items() if k != "updated_at"} for key, doc in after[organizations_index].items()}
    assert all(doc["updated_at"] == before[organizations_index][key]["updated_at"]
               for key, doc in after[organizations_index].items())


def test_internal_and_allowed_organisations_cover_every_host_under_them(es, settings, enron):
    internal = with_settings(settings, internal_organizations=("enron.com",))
    run(es, internal, "internal")
    expected = assert_matches_oracle(es, internal, enron, [EVERYTHING])
    assert not any(domain.endswith("enron.com") for domain in expected["domains"])


def test_an_allow_list_of_organisations(es, settings, enron):
    allowed = with_settings(settings, allowed_organizations=("pge.com", "berkeley.edu"), allowed_domains=("aol.com",))
    run(es, allowed, "allowed")
    expected = assert_matches_oracle(es, allowed, enron, [EVERYTHING])
    assert set(expected["organizations"]) == {"pge.com", "berkeley.edu", "aol.com"}


def test_erasing_an_organisation_erases_every_host_under_it_and_keeps_later_hosts_out(es, settings, enron):
    from mailforce.stages.erase import erase
    from support import load_source

    run(es, settings, "before")
    audit = erase(es, settings, {"organizations": ["PGE.com"], "reason": "test", "requested_by": "dpo@kunaico.com"})
    assert audit["organizations"] == ["pge.com"] and audit["removed"]["organizations"] == 1
    expected = assert_matches_oracle(es, settings, enron, [EVERYTHING], erased_organizations=["pge.com"])
    assert not any(domain.endswith("pge.com") for domain in expected["domains"])
    later = [{"_id": "later-1", "_source": {
        "account": "kean-s", "messageId": "<later-1@new.pge.com>", "date": "2030-06-01T10:00:00Z",
        "from": {"address": "jane@new.pge.com"}, "to": {"address": ["steven.kean@enron.com", "bob@usgen.com"]}}}]
    load_source(es, settings, later)
    run(es, settings, "after", run_end=datetime(2031, 1, 1, tzinfo=UTC))
    assert_matches_oracle(es, settings, enron + later, [Coverage(window_end=datetime(2031, 1, 1, tzinfo=UTC))],
                          erased_organizations=["pge.com"])


def test_outputs_written_before_organisations_are_regrouped_by_the_next_run(es, settings, enron):
    from elasticsearch import helpers

    run(es, settings, "before")
    # As the previous version left them: no organisation index, fields, months or fingerprint.
    es.indices.delete(index=settings.organizations_index)
    dropped = ("organization", "organization_kind", "public_suffix_list_version", "organization_overrides",
               "organizations_fingerprint")
    for index in (settings.engagements_index, settings.relationships_index, settings.contacts_index,
                  settings.domains_index, settings.timeline_index, settings.runtime_stats_index):
        es.indices.refresh(index=index)
        actions = []
        for hit in helpers.scan(es, index=index):
            if hit["_source"].get("scope") == "organization":
                actions.append({"_op_type": "delete", "_index": index, "_id": hit["_id"]})
            else:
                source = {key: value for key, value in hit["_source"].items() if key not in dropped}
                actions.append({"_index": index, "_id": hit["_id"], "_source": source})
        helpers.bulk(es, actions, raise_on_error=True, refresh=True)
    run(es, settings, "upgraded")  # no new mail: the regrouping alone
    assert_matches_oracle(es, settings, enron, [EVERYTHING])
