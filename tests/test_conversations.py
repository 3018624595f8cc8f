"""Conversations, not co-occurrence (docs/SEMANTICS.md, "Conversations"): each mailbox's own addresses,
direct exchange weighed by its audience, and robots recognised by behaviour, on the Enron mail."""

from __future__ import annotations


from elasticsearch import helpers

from oracle import Coverage
from support import FAR_FUTURE_RUN_END, assert_matches_oracle, run, small_settings

EVERYTHING = Coverage(window_end=FAR_FUTURE_RUN_END)


def documents(es, index: str) -> list[dict]:
    es.indices.refresh(index=index)
    return [hit["_source"] for hit in helpers.scan(es, index=index, query={"query": {"match_all": {}}})]


def test_every_mailbox_knows_its_own_address_with_the_evidence(enron_run):
    es, settings = enron_run.es, enron_run.settings
    statistics = documents(es, settings.account_stats_index)
    inferred = [document for document in statistics if document["owner_source"] == "inferred"]
    assert len(inferred) >= 30, [document["account"] for document in statistics if document["owner_source"] != "inferred"]
    for document in inferred:
        evidence = document["owner_evidence"]
        top = evidence["candidates"][0]
        assert document["owner_addresses"] == [top["email_address"]]
        assert 2 * top["messages"] >= evidence["messages"]
        assert len(evidence["candidates"]) == 1 or evidence["candidates"][1]["messages"] < top["messages"]
    for document in sorted(statistics, key=lambda document: document["account"]):
        print("%s: %s (%s) %s" % (document["account"], document["owner_addresses"], document["owner_source"],
                 document["owner_evidence"]))


def test_the_owner_of_a_mailbox_has_no_relationship_strength_with_it(enron_run):
    es, settings = enron_run.es, enron_run.settings
    relationships = documents(es, settings.relationships_index)
    owners = [relationship for relationship in relationships if relationship["owner"]]
    assert owners, "the mailboxes' own addresses are outside addresses of theirs on this corpus"
    assert all(relationship["strength"] == 0 and relationship["direct_count"] == 0 for relationship in owners)


def test_nobody_a_mailbox_wrote_to_is_flagged_as_a_broadcaster(enron_run):
    es, settings = enron_run.es, enron_run.settings
    contacts = {document["email_address"]: document for document in documents(es, settings.contacts_index)}
    relationships = documents(es, settings.relationships_index)
    written_to = {relationship["email_address"] for relationship in relationships if relationship["direct_to_count"]}
    broadcasters = sorted((address for address, contact in contacts.items()
                           if contact["automated_reason"] == "broadcast"),
                          key=lambda address: -contacts[address]["broadcast_messages"])
    assert not written_to & set(broadcasters)
    for address in broadcasters:
        contact = contacts[address]
        assert contact["broadcast_messages"] >= settings.broadcast_min_messages and contact["answered_count"] == 0
        print("broadcast: %s (%d messages to %d+ recipients, %d accounts)" % (address,
                 contact["broadcast_messages"], settings.broadcast_min_audience, contact["accounts_count"]))
    reasons = {}
    for contact in contacts.values():
        reasons[contact["automated_reason"]] = reasons.get(contact["automated_reason"], 0) + 1
    print("automated reasons: %s" % reasons)
    for contact in sorted(contacts.values(), key=lambda contact: -contact["broadcast_messages"])[:25]:
        print("sent to many: %s %d answered %d accounts %d reason %s" % (
            contact["email_address"], contact["broadcast_messages"], contact["answered_count"],
            contact["accounts_count"], contact["automated_reason"]))


def test_a_mailbox_address_set_by_hand_and_a_lower_broadcast_threshold_match_the_oracle(enron_run, osmem_server):
    """The setting wins over the inference (a setting change alone recomputes the account's domains);
    with broadcasters at 10 large mailings, what is flagged is listed and none of it was written to."""
    from dataclasses import replace

    from mailforce.es.client import ClientOptions, build_client
    from support import load_source

    es, settings, source = enron_run.es, enron_run.settings, enron_run.source
    statistics = {document["account"]: document for document in documents(es, settings.account_stats_index)}
    account = "kean-s"
    other = statistics[account]["owner_evidence"]["candidates"][1]["email_address"]
    lower = replace(settings, broadcast_min_messages=10)
    configured = replace(lower, account_addresses=(f"{account}={other}",))
    clone = osmem_server.clone()
    client = build_client(ClientOptions(url=clone.url, engine="osmem", max_retries=1, request_timeout=120))
    try:
        load_source(client, configured, source)
        run(client, lower, "inferred-first")
        run(client, configured, "set-by-hand")  # no new mail: the setting alone changes the account's owners
        expected = assert_matches_oracle(client, configured, source, [EVERYTHING])
        assert expected["account_stats"][account]["owner_addresses"] == [other]
        assert expected["account_stats"][account]["owner_source"] == "setting"
        flagged = {address: contact for address, contact in expected["contacts"].items()
                   if contact["automated_reason"] == "broadcast"}
        written_to = {address for (_, address), relationship in expected["relationships"].items()
                      if relationship["direct_to_count"]}
        print("broadcast at 10:", {address: contact["broadcast_messages"] for address, contact in flagged.items()})
        assert flagged and not written_to & set(flagged)
    finally:
        client.close()
        clone.close()


# --- the rules on their own (no engine) -------------------------------------------------------


def test_a_list_whose_local_part_has_dots_is_its_own_list_id():
    """SEMANTICS.md rule 3: local part + "." + domain equals the List-Id. The first dot of the list id
    is not the `@`: kevin.presto@enron.com is the list `kevin.presto.enron.com`."""
    from mailforce.core.automated import header_flagged_addresses
    from oracle import list_id_address_forms

    source = {"list_id": "Presto <Kevin.Presto.Enron.com>"}
    roles = {("kevin.presto@enron.com", "To"), ("kevin@presto.enron.com", "CC"), ("jim@acme.com", "To")}
    assert header_flagged_addresses(source, roles) == {"kevin.presto@enron.com", "kevin@presto.enron.com"}
    assert list_id_address_forms(source) == {"kevin.presto.enron.com"}  # the oracle reads it the same way
    assert header_flagged_addresses({"list_id": ["x", "<announce.acme.com>"]}, {("announce@acme.com", "CC")}) == {
        "announce@acme.com"}
    assert header_flagged_addresses(source, {("kevin.presto@enron.com", "From")}) == set()  # the list never sends


def test_direct_exchange_needs_the_owner_on_the_other_side():
    from mailforce.core.conversations import direct_exchange

    owners = frozenset({"jim@kunaico.com"})
    to_jim = direct_exchange({"From"}, ["bob@acme.com"], ["jim@kunaico.com", "carol@acme.com"], owners, "bob@acme.com")
    assert (to_jim.address_wrote, to_jim.owner_wrote) == (True, False)
    from_jim = direct_exchange({"CC"}, ["jim@kunaico.com"], ["bob@acme.com"], owners, "bob@acme.com")
    assert (from_jim.address_wrote, from_jim.owner_wrote) == (False, True)
    # CC'd on mail the mailbox merely received: co-occurrence, not conversation
    assert not direct_exchange({"CC"}, ["pete@acme.com"], ["jim@kunaico.com", "bob@acme.com"], owners,
                               "bob@acme.com").direct
    assert not direct_exchange({"To"}, ["jim@kunaico.com"], ["jim@kunaico.com"], owners, "jim@kunaico.com").direct
    assert not direct_exchange({"From"}, ["bob@acme.com"], ["jim@kunaico.com"], frozenset(), "bob@acme.com").direct


def test_owner_inference_wants_half_the_mail_and_no_tie():
    from mailforce.core.conversations import OwnerEvidence, inferred_owner, owner_fields

    assert inferred_owner(OwnerEvidence(10, (("jim@k.com", 5), ("bob@a.com", 4)))) == "jim@k.com"
    assert inferred_owner(OwnerEvidence(10, (("jim@k.com", 4), ("bob@a.com", 3)))) is None  # under half
    assert inferred_owner(OwnerEvidence(4, (("jim@k.com", 4), ("bob@a.com", 4)))) is None  # a tie
    assert inferred_owner(OwnerEvidence()) is None
    fields = owner_fields(["b@k.com", "a@k.com"], OwnerEvidence(4, (("jim@k.com", 4),)))
    assert (fields["owner_addresses"], fields["owner_source"]) == (["a@k.com", "b@k.com"], "setting")


def test_broadcast_needs_many_large_mailings_and_no_answer():
    from mailforce.core.conversations import BroadcastRule, automated_reason

    rule = BroadcastRule(min_messages=20, min_audience=10)
    assert rule.flags(20, 0) and not rule.flags(19, 0) and not rule.flags(604, 1)
    assert automated_reason(pattern=True, header=True, broadcast=True) == "pattern"
    assert automated_reason(pattern=False, header=True, broadcast=True) == "header"
    assert automated_reason(pattern=False, header=False, broadcast=True) == "broadcast"
    assert automated_reason(pattern=False, header=False, broadcast=False) is None


def mail(doc_id: str, account: str, date: str, sender: str, to: list[str], cc: list[str] | None = None) -> dict:
    source = {"account": account, "messageId": f"<{doc_id}@x>", "date": date, "from": {"address": sender},
              "to": {"address": to}}
    if cc:
        source["cc"] = {"address": cc}
    return {"_id": doc_id, "_source": source}


def test_an_owner_found_by_later_mail_then_erased_keeps_every_figure_exact(es):
    """The owner is internal (kunaico.com) yet counts; it stands out only once new mail breaks a tie,
    which recomputes a domain the new mail does not touch; erasing it recomputes again."""
    from dataclasses import replace

    from mailforce.stages.erase import erase
    from support import load_source

    settings = replace(small_settings(), internal_domains=("kunaico.com",))
    first = [mail("m1", "jim", "2001-05-01T10:00:00Z", "jim@kunaico.com", ["sue@globex.org"]),
             mail("m2", "jim", "2001-05-02T10:00:00Z", "sue@globex.org", ["jim@kunaico.com"], ["ann@kunaico.com"])]
    later = [mail("m3", "jim", "2001-06-01T10:00:00Z", "jim@kunaico.com", ["tom@acme.com"] + [
        f"p{number}@initech.com" for number in range(11)])]
    load_source(es, settings, first)
    run(es, settings, "tied", run_end=utc_of("2001-05-31T00:00:00Z"))
    tied = assert_matches_oracle(es, settings, first, [EVERYTHING])
    assert tied["account_stats"]["jim"]["owner_source"] == "none"  # jim@ and sue@ are on 2 of 2 each
    assert tied["relationships"][("jim", "sue@globex.org")]["strength"] == 0

    load_source(es, settings, later)
    run(es, settings, "stands-out")
    found = assert_matches_oracle(es, settings, first + later, [EVERYTHING])
    assert found["account_stats"]["jim"]["owner_addresses"] == ["jim@kunaico.com"]
    sue = found["relationships"][("jim", "sue@globex.org")]  # globex.org: recomputed, not in the new mail
    assert (sue["direct_from_count"], sue["direct_to_count"], sue["direct_weight"]) == (1, 1, 1_500_000)
    # a message to twelve people weighs floor(1,000,000 / 12) = 83,333 for each of them
    assert found["relationships"][("jim", "tom@acme.com")]["direct_weight"] == 83_333

    erase(es, settings, {"addresses": ["jim@kunaico.com"], **ERASURE_REQUEST})
    erased = assert_matches_oracle(es, settings, first + later, [EVERYTHING], erased_addresses=["jim@kunaico.com"])
    assert erased["account_stats"]["jim"]["owner_addresses"] != ["jim@kunaico.com"]


ERASURE_REQUEST = {"reason": "a test of the owner's erasure", "requested_by": "dpo@kunaico.com"}


def utc_of(text: str):
    from support import utc

    return utc(text)
