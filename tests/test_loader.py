"""The mail loader against a real engine: the Enron corpus, the shipped sample set, and the dirt.

Expected values were measured by reading the files themselves (headers counted independently of the
loader), so every assertion pins an exact figure.
"""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path
from typing import Any

import pytest

from mailforce.tools.loader import (
    SOURCE_MAPPING,
    BulkLoadError,
    LoadReport,
    NothingLoaded,
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


def test_a_message_without_account_is_skipped_and_counted_when_only_the_header_may_name_it(es, tmp_path):
    write(tmp_path / "inbox" / "with.eml", "X-Origin: Kunai-Jim\nFrom: a@b.com\nTo: c@d.com\n\nhi\n")
    write(tmp_path / "inbox" / "without.eml", "From: a@b.com\nTo: c@d.com\n\nhi\n")
    write(tmp_path / "inbox" / "empty.eml", "")
    write(tmp_path / "inbox" / "notes.md", "not mail")
    write(tmp_path / ".git" / "objects" / "ab" / "cdef0123", "X-Origin: kunai-jim\n\nnot mail either\n")

    report = load_mail(es, tmp_path, account_from="header")

    assert report == LoadReport(
        files_read=3, messages_indexed=1, skipped_no_account=1, skipped_unreadable=1, accounts=["kunai-jim"]
    )
    assert [problem.reason for problem in report.unreadable] == ["empty file"]
    assert count_by_account(es) == {"kunai-jim": 1}


def test_by_default_a_message_without_the_header_takes_its_folders_owner(es, tmp_path):
    write(tmp_path / "inbox" / "with.eml", "X-Origin: Kunai-Jim\nFrom: a@b.com\nTo: c@d.com\n\nhi\n")
    write(tmp_path / "inbox" / "without.eml", "From: x@y.com\nTo: C@D.com\n\nhi\n")

    report = load_mail(es, tmp_path / "inbox")

    # "inbox" says what the folder holds, not whose it is: c@d.com is on both messages
    assert (report.messages_indexed, report.skipped_no_account) == (2, 0)
    assert count_by_account(es) == {"kunai-jim": 1, "c@d.com": 1}
    [entry] = report.inputs
    assert entry.describe() == (f"{tmp_path / 'inbox'}: 2 messages, accounts kunai-jim (from the X-Origin header, "
                                "1 messages), c@d.com (from the mailbox owner's address, 1 messages)")


# ---- a user's own export: no X-Origin header


OWNER = "jane.roe@acme-consulting.com"
CORRESPONDENTS = ["tom@bluefin.io", "ana@cedar.org", "raj@acme-consulting.com", "lee@delta.net"]


def own_mbox(path: Path, messages: int = 12) -> Path:
    """An mbox as Gmail Takeout or Thunderbird writes it: no X-Origin; the owner on every message."""
    parts = []
    for number in range(messages):
        other = CORRESPONDENTS[number % len(CORRESPONDENTS)]
        sender, recipient = (OWNER, other) if number % 3 == 0 else (other, OWNER)
        parts.append(
            f"From {sender} Mon Jan  1 00:00:00 2024\n"
            f"Message-ID: <m{number}@mail.example>\nDate: Mon, {number + 1} Jan 2024 10:00:00 +0000\n"
            f"From: Someone <{sender}>\nTo: {recipient}\nSubject: note {number}\n\nbody {number}\n\n"
        )
    return write(path, "".join(parts))


def test_an_own_mbox_without_the_header_takes_the_mbox_files_name(es, tmp_path):
    report = load_mail(es, own_mbox(tmp_path / "Jane Roe.mbox"))

    assert (report.messages_indexed, report.skipped_no_account, report.accounts) == (12, 0, ["jane-roe"])
    assert count_by_account(es) == {"jane-roe": 12}
    assert report.inputs[0].describe() == f"{tmp_path / 'Jane Roe.mbox'}: 12 messages, account jane-roe (from the mbox file name)"
    assert report.owners == [OWNER]


def test_a_gmail_takeout_mbox_takes_the_owners_address(es, tmp_path):
    takeout = own_mbox(tmp_path / "Takeout" / "Mail" / "All mail Including Spam and Trash.mbox")

    report = load_mail(es, tmp_path / "Takeout")

    assert count_by_account(es) == {OWNER: 12}
    assert report.inputs[0].describe().endswith("12 messages, account jane.roe@acme-consulting.com (from the mailbox owner's address)")
    assert report.inputs[0].path == str(takeout)


def test_the_sample_without_its_header_takes_maildir_mbox_and_folder_names(es):
    report = load_mail(es, SAMPLE, account_header="No-Such-Header")

    assert count_by_account(es) == SAMPLE_COUNTS
    sources = {entry.path.rsplit("/", 1)[1]: set(how for _account, how in entry.sources) for entry in report.inputs}
    assert sources == {"kunai-jim": {"the Maildir folder name"}, "kunai-sara.mbox": {"the mbox file name"},
                       "kunai-ken": {"the folder name"}, "kunai-ann": {"the folder name"}, "kunai-raj": {"the folder name"}}


def test_an_account_given_by_flag_names_every_message(es, tmp_path):
    report = load_mail(es, own_mbox(tmp_path / "All mail Including Spam and Trash.mbox"), account="jane")

    assert count_by_account(es) == {"jane": 12}
    assert report.inputs[0].describe().endswith("account jane (from --account)")


def test_header_only_accounts_on_an_own_export_load_nothing_and_say_how_to_fix_it(es, tmp_path):
    with pytest.raises(NothingLoaded, match=r"none of its 12 messages named an account \(no X-Origin header\)"
                       r".*--account NAME") as failed:
        load_mail(es, own_mbox(tmp_path / "jane.mbox"), account_from="header")
    assert failed.value.exit_code == 2 and failed.value.report.skipped_no_account == 12


# ---- unreadable input


def test_a_truncated_mbox_loads_what_it_holds_and_names_the_cut_message(es, tmp_path):
    whole = (SAMPLE / "kunai-sara.mbox").read_bytes()
    starts = [0] + [position + 2 for position in range(len(whole)) if whole.startswith(b"\n\nFrom ", position)]
    assert len(starts) == 97
    cut = whole.index(b"\n", whole.index(b"\n", starts[49]) + 1) + 10  # inside message 50's second header
    path = tmp_path / "kunai-sara.mbox"
    path.write_bytes(whole[:cut])

    report = load_mail(es, path)

    assert (report.messages_indexed, report.skipped_unreadable, report.skipped_no_account) == (49, 1, 0)
    assert [problem.describe() for problem in report.unreadable] == [
        f"{path} (message 50): truncated: the file ends inside this message's headers"]


def test_binary_files_given_as_mail_are_unreadable_not_messages_without_account(es, tmp_path):
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256))
    (tmp_path / "photo.jpg").write_bytes(png)
    (tmp_path / "archive.mbox").write_bytes(png)
    write(tmp_path / "mail" / "cur" / "1", "Dear Jane, this is a letter, not a message file.\n")
    (tmp_path / "mail" / "new").mkdir()
    paths = [tmp_path / "photo.jpg", tmp_path / "archive.mbox", tmp_path / "mail"]

    with pytest.raises(NothingLoaded, match=r"nothing could be read from .*photo.jpg.*: 3 unreadable") as failed:
        load_mail(es, paths)

    report = failed.value.report
    assert (report.skipped_unreadable, report.skipped_no_account, report.messages_indexed) == (3, 0, 0)
    assert [problem.describe() for problem in report.unreadable] == [
        f"{tmp_path / 'photo.jpg'}: not mail: binary content",
        f"{tmp_path / 'archive.mbox'}: not an mbox: binary content",
        f"{tmp_path / 'mail' / 'cur' / '1'}: not mail: it does not begin with header lines such as 'From:' or 'Date:'",
    ]


def test_a_folder_without_mail_says_what_was_expected(es, tmp_path):
    write(tmp_path / "notes.md", "no mail here")

    with pytest.raises(NothingLoaded, match=r"found no mail in .*: expected Maildir folders \(cur/, new/\), mbox files"):
        load_mail(es, tmp_path)


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
        f"  {SAMPLE / 'kunai-raj'}: 93 messages, account kunai-raj (from the X-Origin header)\n"
    )
    assert count(es, index="cli-test") == 93


def test_command_line_refuses_unreadable_input_missing_paths_and_bad_options_in_two_lines(es_url, tmp_path, capsys):
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\0\x10JFIF\0")
    url = ["--url", es_url, "--engine", "osmem"]

    assert main([str(tmp_path / "photo.jpg"), *url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"loader: nothing could be read from {tmp_path / 'photo.jpg'}: 1 unreadable "
                       f"({tmp_path / 'photo.jpg'}: not mail: binary content). Give a Maildir, an mbox file or a "
                       "folder of .eml files, as exported by the mail program.")
    assert "Traceback" not in "\n".join(err)

    assert main([str(tmp_path / "no-such.mbox"), *url]) == 2
    assert capsys.readouterr().err == f"loader: mail not found: {tmp_path / 'no-such.mbox'}. Check the path.\n"

    with pytest.raises(SystemExit) as exited:
        main([str(SAMPLE), "--account", "jim", "--account-from", "bogus"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m mailforce.tools.loader: argument --account-from: invalid choice: 'bogus' "
        "(choose from 'auto', 'header', 'folder', 'owner')",
        "Run `python -m mailforce.tools.loader --help` for the options.",
    ]


def test_command_line_with_a_wrong_url_fails_fast_with_the_cause(closed_port, capsys):
    began = time.monotonic()
    assert main([str(SAMPLE / "kunai-raj"), "--url", f"http://127.0.0.1:{closed_port}"]) == 2
    assert time.monotonic() - began < 5
    assert capsys.readouterr().err.splitlines() == [
        f"loader: cannot reach Elasticsearch at http://127.0.0.1:{closed_port}: Connection refused.",
        "Check the URL (--url http://host:9200) or the Airflow connection, and that the server runs.",
    ]


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
    origins = {origin for origin, _raw in iter_raw_messages([SAMPLE / "kunai-jim", SAMPLE])}

    assert {origin.label for origin in origins} == set(SAMPLE_COUNTS)
    assert {(origin.label, origin.kind) for origin in origins} == {
        ("kunai-jim", "maildir"), ("kunai-sara", "mbox"), ("kunai-ken", "folder"), ("kunai-ann", "folder"),
        ("kunai-raj", "folder")}
