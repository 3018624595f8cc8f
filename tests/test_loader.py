"""The mail loader against a real engine: the Enron corpus, the shipped sample set, and the dirt.

Expected values were measured by reading the files themselves (headers counted independently of the
loader), so every assertion pins an exact figure.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from mailforce.tools.loader import (
    SOURCE_MAPPING,
    BulkLoadError,
    LoadReport,
    ensure_source_index,
    iter_raw_messages,
    load_mail,
    main,
    parse_message,
    source_document_id,
    split_mbox,
)

INDEX = "search-shinobi-email"
SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "mail"
SAMPLE_COUNTS = {"kunai-ann": 91, "kunai-jim": 103, "kunai-ken": 112, "kunai-raj": 93, "kunai-sara": 97}
ENRON_FOLDED_TO_FILE = Path("1") / "129665.txt"


def count_by_account(es: Any, index: str = INDEX) -> dict[str, int]:
    response = es.search(index=index, size=0, aggs={"accounts": {"terms": {"field": "account", "size": 500}}})
    return {bucket["key"]: bucket["doc_count"] for bucket in response["aggregations"]["accounts"]["buckets"]}


def count(es: Any, query: dict[str, Any] | None = None, index: str = INDEX) -> int:
    return es.count(index=index, query=query or {"match_all": {}})["count"]


def all_documents(es: Any, index: str = INDEX) -> list[dict[str, Any]]:
    hits = es.search(index=index, size=2000, query={"match_all": {}})["hits"]["hits"]
    return [hit["_source"] for hit in hits]


def by_subject(documents: list[dict[str, Any]], subject: str) -> list[dict[str, Any]]:
    return [document for document in documents if document.get("subject") == subject]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


# ---- the Enron corpus


def test_enron_corpus_loads_one_document_per_message_for_60_accounts(es, enron_corpus):
    report = load_mail(es, enron_corpus)

    assert (report.files_read, report.messages_indexed) == (1702, 1702)
    assert (report.skipped_no_account, report.skipped_unreadable) == (0, 0)
    assert len(report.accounts) == 60
    counts = count_by_account(es)
    assert len(counts) == 60
    assert sum(counts.values()) == 1702
    assert counts["kean-s"] == 990
    assert counts["kaminski-v"] == 191
    assert counts["dasovich-j"] == 150
    assert counts["williams-w3"] == 1
    assert sorted(counts) == report.accounts


def test_loading_the_corpus_twice_overwrites_instead_of_duplicating(es, enron_corpus):
    first = load_mail(es, enron_corpus)
    second = load_mail(es, enron_corpus)

    assert first == second
    assert count(es) == 1702
    raw = (enron_corpus / ENRON_FOLDED_TO_FILE).read_bytes()
    expected_id = hashlib.sha256(b"dasovich-j\0" + raw).hexdigest()[:32]
    assert source_document_id("dasovich-j", raw) == expected_id
    assert es.get(index=INDEX, id=expected_id)["_source"]["account"] == "dasovich-j"


def test_a_folded_multi_line_to_yields_every_address(es, enron_corpus):
    report = load_mail(es, enron_corpus / ENRON_FOLDED_TO_FILE)

    assert report.messages_indexed == 1
    [document] = all_documents(es)
    # the loader stamps when it indexed the document (the arrival field of late-mail windows)
    assert len(document.pop("indexed_at")) == len("2001-05-14T23:39:00Z")
    assert document == {
        "account": "dasovich-j",
        "messageId": "<1805953.1075861508566.JavaMail.evans@thyme>",
        "date": "2001-11-14T14:34:57-08:00",
        "from": {"address": ["alan.comnes@enron.com"]},
        "to": {
            "address": [
                "d..steffes@enron.com",
                "jeff.dasovich@enron.com",
                "michael.tribolet@enron.com",
                "wanda.curry@enron.com",
                "lisa.mellencamp@enron.com",
                "'.'jan@enron.com",
                "steve.swain@enron.com",
                "susan.mara@enron.com",
            ]
        },
        "cc": {"address": ["ray.alvarez@enron.com"]},
        "subject": "RE: PG&E PX Credit Calculation -- CONFIDENTIAL ATTY CLIENT WORK PRODUCT",
    }


def test_messages_without_to_are_indexed_without_a_to_field(es, enron_corpus):
    load_mail(es, enron_corpus)

    assert count(es, {"bool": {"must_not": {"exists": {"field": "to.address"}}}}) == 145
    assert count(es, {"exists": {"field": "cc.address"}}) == 412
    no_to = parse_message((enron_corpus / "1" / "122671.txt").read_bytes())
    assert no_to is not None and "to" not in no_to
    assert no_to["from"] == {"address": ["henry.means@enron.com"]}


def test_every_enron_date_is_indexed_as_a_date(es, enron_corpus):
    load_mail(es, enron_corpus)

    assert count(es, {"exists": {"field": "date"}}) == 1702
    assert count(es, {"range": {"date": {"gte": "1979-01-01T00:00:00Z", "lt": "2003-01-01T00:00:00Z"}}}) == 1702
    # real dirt: 13 messages dated "Mon, 31 Dec 1979 16:00:00 -0800" (1980-01-01T00:00:00Z, a
    # placeholder), 111 dated 1997, although the corpus spans 1999-2002: offsets are honoured
    assert count(es, {"range": {"date": {"lt": "1980-01-01T00:00:00Z"}}}) == 0
    assert count(es, {"range": {"date": {"lte": "1980-01-01T00:00:00Z"}}}) == 13
    assert count(es, {"range": {"date": {"lt": "2000-01-01T00:00:00Z"}}}) == 157


# ---- the sample set


def test_sample_set_loads_every_account_from_every_format(es):
    report = load_mail(es, SAMPLE)

    assert report == LoadReport(
        files_read=400, messages_indexed=496, skipped_no_account=0, skipped_unreadable=0,
        accounts=sorted(SAMPLE_COUNTS),
    )
    assert count_by_account(es) == SAMPLE_COUNTS


@pytest.mark.parametrize(
    ("path", "files_read", "messages"),
    [
        ("kunai-jim", 103, 103),  # maildir: cur/, new/ and the nested Maildir++ folder .Sent/
        ("kunai-sara.mbox", 1, 97),  # one mbox file
        ("kunai-ken", 112, 112),  # .eml files in inbox/, sent/, archive/
    ],
)
def test_each_sample_format_is_detected(es, path, files_read, messages):
    report = load_mail(es, SAMPLE / path, index="one-format")

    assert (report.files_read, report.messages_indexed) == (files_read, messages)
    assert count(es, index="one-format") == messages


def test_account_from_folder_names_matches_the_header(es):
    report = load_mail(es, SAMPLE, account_from="folder", account_header="No-Such-Header")

    assert report.skipped_no_account == 0
    assert count_by_account(es) == SAMPLE_COUNTS


def test_an_account_given_by_name_wins_over_the_header(es):
    load_mail(es, SAMPLE / "kunai-sara.mbox", account="sara-archive")

    assert count_by_account(es) == {"sara-archive": 97}


def test_sample_dirt_reaches_the_index_as_written(es):
    load_mail(es, SAMPLE)
    documents = all_documents(es)
    assert len(documents) == 496

    [announcement] = by_subject(documents, "Kunai product update - spring edition")
    assert len(announcement["to"]["address"]) == 60
    assert len(set(announcement["to"]["address"])) == 60

    [folded] = by_subject(documents, "Re: shipping schedule for all hands")
    assert folded["to"]["address"] == [
        "jim@kunaico.com", "sara@kunaico.com", "IVAN.NGUYEN@ACME-LOGISTICS.COM",
        "tara@bluefin-capital.com", "jane.doe@acme-logistics.com", "Ken@KUNAICO.COM",
    ]

    [invalid] = by_subject(documents, "Re: invoice 4471 bounced")
    assert invalid["to"]["address"] == ["jane.doe", "tsilva@acme-logistics.com"]
    assert invalid["cc"]["address"] == ["bob@localhost"]

    [unicode_name] = by_subject(documents, "Angebot Solarmodule")
    assert unicode_name["from"]["address"] == ["zoe.mueller@helios-solar.de"]
    assert count(es, {"term": {"to.address": "josé.núñez@andino.com.co"}}) == 1

    [empty_group] = by_subject(documents, "Event invitation")
    assert empty_group["to"] == {"address": []}

    [odd_origin] = by_subject(documents, "Re: site visit photos")
    assert odd_origin["account"] == "kunai-ann"

    assert sum("to" not in document for document in documents) == 3
    assert sum("date" not in document for document in documents) == 1


def test_sample_repeats_a_message_across_and_within_mailboxes(es):
    load_mail(es, SAMPLE)
    documents = all_documents(es)

    shared = by_subject(documents, "Bluefin term sheet - internal view")
    assert sorted(document["account"] for document in shared) == ["kunai-jim", "kunai-sara"]
    assert len({document["messageId"] for document in shared}) == 1

    filed_twice = by_subject(documents, "Signed contract")
    assert [document["account"] for document in filed_twice] == ["kunai-ken", "kunai-ken"]
    assert len({document["messageId"] for document in filed_twice}) == 1


def test_dates_keep_their_offset_and_unparseable_ones_stay_raw(es):
    load_mail(es, SAMPLE)
    documents = all_documents(es)

    [unparseable] = by_subject(documents, "Lunch?")
    assert unparseable["date"] == "sometime next Tuesday"
    [without_zone] = by_subject(documents, "Re: roadmap call time")
    assert without_zone["date"] == "2025-03-04T09:15:00"
    [with_zone] = by_subject(documents, "Angebot Solarmodule")
    assert with_zone["date"] == "2024-01-07T07:35:24+09:00"
    # the raw date is stored but not indexed (ignore_malformed), so no range ever selects it
    assert count(es, {"range": {"date": {"gte": "2024-01-01T00:00:00Z", "lt": "2026-01-02T00:00:00Z"}}}) == 494
    assert count(es, {"exists": {"field": "date"}}) == 494


# ---- skips, mapping, failures


def test_a_message_without_account_is_skipped_and_counted(es, tmp_path):
    write(tmp_path / "inbox" / "with.eml", "X-Origin: Kunai-Jim\nFrom: a@b.com\nTo: c@d.com\n\nhi\n")
    write(tmp_path / "inbox" / "without.eml", "From: a@b.com\nTo: c@d.com\n\nhi\n")
    write(tmp_path / "inbox" / "empty.eml", "")
    write(tmp_path / "inbox" / "notes.md", "not mail")
    write(tmp_path / ".git" / "objects" / "ab" / "cdef0123", "X-Origin: kunai-jim\n\nnot mail either\n")

    report = load_mail(es, tmp_path)

    assert report == LoadReport(
        files_read=3, messages_indexed=1, skipped_no_account=1, skipped_unreadable=1, accounts=["kunai-jim"]
    )
    assert count_by_account(es) == {"kunai-jim": 1}


def test_the_source_index_is_created_with_an_explicit_mapping(es):
    assert ensure_source_index(es, INDEX) is True
    assert ensure_source_index(es, INDEX) is False

    mapping = es.indices.get_mapping(index=INDEX)[INDEX]["mappings"]
    properties = mapping["properties"]
    assert properties["date"] == {"type": "date", "ignore_malformed": True}
    assert properties["account"] == {"type": "keyword"}
    assert properties["messageId"] == {"type": "keyword"}
    for name in ("from", "to", "cc"):
        assert properties[name] == {"properties": {"address": {"type": "keyword"}}}
    assert properties["subject"] == {"type": "text"}
    assert str(mapping["dynamic"]).lower() == "false"
    assert set(properties) == set(SOURCE_MAPPING["properties"])


def test_a_failing_bulk_item_raises_with_details(es, tmp_path):
    es.indices.create(index="strict-dates", mappings={"properties": {"date": {"type": "date"}}})
    write(tmp_path / "bad.eml", "X-Origin: kunai-jim\nDate: not a date\nFrom: a@b.com\n\nhi\n")
    write(tmp_path / "good.eml", "X-Origin: kunai-jim\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nFrom: a@b.com\n\nhi\n")

    with pytest.raises(BulkLoadError, match=r"1 message\(s\) failed to index into strict-dates"):
        load_mail(es, tmp_path, index="strict-dates")
    assert count(es, index="strict-dates") == 1


def test_bad_options_are_refused_before_anything_is_written(es, tmp_path):
    with pytest.raises(ValueError, match="not both"):
        load_mail(es, tmp_path, account="kunai-jim", account_from="folder")
    with pytest.raises(ValueError, match="account_from"):
        load_mail(es, tmp_path, account_from="subject")
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        load_mail(es, [tmp_path, tmp_path / "no-such-dir"])
    assert not es.indices.exists(index=INDEX)


def test_command_line_loads_and_prints_a_summary(es, es_url, capsys):
    exit_code = main([str(SAMPLE / "kunai-raj"), "--url", es_url, "--engine", "osmem", "--index", "cli-test"])

    assert exit_code == 0
    assert capsys.readouterr().out == (
        "cli-test: files_read=93 messages_indexed=93 skipped_no_account=0 skipped_unreadable=0 "
        "accounts=1 (kunai-raj)\n"
    )
    assert count(es, index="cli-test") == 93


# ---- pure parsing and reading


def test_parse_message_reads_every_occurrence_of_an_address_header():
    raw = (
        b"Message-ID:  <abc@mail.example.com> \r\n"
        b"Date: Mon, 14 May 2001 16:39:00 -0700\r\n"
        b'From: "Doe, Jane" <Jane@Acme.COM>\r\n'
        b"To: a@x.com,\r\n\t b@y.com\r\n"
        b"To: C <c@z.com>\r\n"
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from\r\n here\r\n"
        b"X-Origin:  Kunai-Jim \r\n\r\nbody\r\n"
    )

    assert parse_message(raw, None, "X-Origin") == {
        "account": "kunai-jim",
        "messageId": "<abc@mail.example.com>",
        "date": "2001-05-14T16:39:00-07:00",
        "from": {"address": ["Jane@Acme.COM"]},
        "to": {"address": ["a@x.com", "b@y.com", "c@z.com"]},
        "subject": "Grüße from here",
    }
    assert parse_message(raw, None, "X-Mailbox") is None
    assert parse_message(raw, "someone", "X-Origin")["account"] == "someone"
    assert parse_message(b"X-Origin: a\n\n", None, "X-Origin") == {"account": "a"}


def test_mbox_splitting_unescapes_from_lines_and_needs_a_blank_line_before_a_separator():
    mbox = (
        b"From a@b.com Mon Jan  1 00:00:00 2024\n"
        b"Subject: one\n\nbody\nFrom inside a paragraph\n>From escaped\n>>From twice\n\n"
        b"From c@d.com Mon Jan  1 00:00:00 2024\n"
        b"Subject: two\n\nbody\n\n"
    )

    assert list(split_mbox(io.BytesIO(mbox))) == [
        b"Subject: one\n\nbody\nFrom inside a paragraph\nFrom escaped\n>From twice\n",
        b"Subject: two\n\nbody\n",
    ]


def test_sample_mbox_body_line_starting_with_from_is_not_a_separator():
    messages = [raw for _label, raw in iter_raw_messages(SAMPLE / "kunai-sara.mbox")]

    assert len(messages) == 97
    [pricing] = [raw for raw in messages if b"Subject: Re: pricing from next month" in raw]
    assert b"\n\nFrom next month the new rates apply.\n" in pricing


def test_origin_labels_name_the_maildir_mbox_or_top_folder():
    labels = {label for label, _raw in iter_raw_messages([SAMPLE / "kunai-jim", SAMPLE])}

    assert labels == set(SAMPLE_COUNTS)
