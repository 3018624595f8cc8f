"""Loads raw mail (maildir trees, mbox files, trees of .eml/.txt files) into the source index.

The pipeline reads one source document per message as harvested for one mailbox (SPEC §3). This
module produces exactly those documents from raw RFC 822 mail, so a cluster can be filled from a
mail export, the shipped sample set or the Enron test corpus without any other harvester.

Design choices, and why:

- Only headers are parsed and only the fields the pipeline reads (plus the subject, for people
  looking at the index) are stored: bodies would make the index large and are never read.
- Values are stored as they appear (addresses are not lower-cased, unparseable dates are kept as
  their raw text): normalising and counting the dirt is the pipeline's job, and it can only count
  what reaches it.
- The document ``_id`` hashes the account and the raw bytes, so loading the same files again
  overwrites instead of duplicating, while two different copies of one message (say, filed in two
  folders with different headers) stay two documents, as the source contract allows.
- Files are read one at a time and mbox files line by line, and documents are streamed to the bulk
  API, so memory does not grow with the size of the export.

Command line::

    python -m mailforce.tools.loader PATH [PATH...] [--index NAME]
        [--account NAME | --account-header HEADER | --account-from folder]
        [--url URL --engine auto|es8|es9|opensearch|osmem] [--conn-id ID]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.header import decode_header, make_header
from email.message import Message
from email.parser import Parser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO

from elasticsearch import BadRequestError
from elasticsearch.helpers import streaming_bulk

from mailforce.tools.console import configure_console_logging

log = logging.getLogger(__name__)

DEFAULT_SOURCE_INDEX = "search-shinobi-email"
DEFAULT_ACCOUNT_HEADER = "X-Origin"
ACCOUNT_FROM_CHOICES = ("header", "folder")

# Files of a plain directory tree that are read as one message each. Names without any suffix are
# included because many exports (the original Enron maildir: "1.", "2.", ...) use bare numbers.
MESSAGE_SUFFIXES = frozenset({".eml", ".txt", ""})
MBOX_SUFFIX = ".mbox"
MBOX_SEPARATOR = b"From "

# The subfolders of a maildir that hold delivered messages; ``tmp`` holds deliveries in progress.
MAILDIR_MESSAGE_FOLDERS = ("cur", "new")

SOURCE_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "account": {"type": "keyword"},
        "messageId": {"type": "keyword"},
        # Malformed dates are kept in the document (the pipeline counts them as skipped) instead of
        # failing the bulk item.
        "date": {"type": "date", "ignore_malformed": True},
        "from": {"properties": {"address": {"type": "keyword"}}},
        "to": {"properties": {"address": {"type": "keyword"}}},
        "cc": {"properties": {"address": {"type": "keyword"}}},
        "subject": {"type": "text"},
        # Bulk-mail headers (Auto-Submitted, Precedence, List-Unsubscribe, List-Id), kept under these
        # names: the pipeline flags the addresses they mark as automated.
        "auto_submitted": {"type": "keyword"},
        "precedence": {"type": "keyword"},
        "list_unsubscribe": {"type": "keyword"},
        "list_id": {"type": "keyword"},
        # When the document was indexed (UTC): runs can select their window on it (arrival_field).
        "indexed_at": {"type": "date"},
    },
}
# Header -> source field, kept as the header's first value.
HEADER_SOURCE_FIELDS = (
    ("Auto-Submitted", "auto_submitted"),
    ("Precedence", "precedence"),
    ("List-Unsubscribe", "list_unsubscribe"),
    ("List-Id", "list_id"),
)
ARRIVAL_FIELD = "indexed_at"

# Source ids are the loader's own (a mailbox copy), not the pipeline's output ids (mailforce.core.ids).
SOURCE_ID_LENGTH = 32
_ADDRESS_FIELDS = (("from", "From"), ("to", "To"), ("cc", "Cc"))
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLDED_LINE_BREAK = re.compile(r"\r?\n(?=[ \t])")
_MBOX_ESCAPED_SEPARATOR = re.compile(rb"^>+From ")
_FAILURE_SAMPLES = 5

# Python releases with the CVE-2023-27043 fix parse address lists strictly by default and turn a
# whole header into one empty pair when a single entry is odd; the pipeline wants every entry it
# can get (and counts the bad ones itself), so the lenient parser is asked for where it exists.
_GETADDRESSES_KEYWORDS = (
    {"strict": False} if "strict" in inspect.signature(getaddresses).parameters else {}
)


class BulkLoadError(RuntimeError):
    """Some messages could not be indexed; the message says how many and why (first few)."""


@dataclass
class LoadReport:
    """What one load did; every message read ends up in exactly one of the three outcomes."""

    files_read: int = 0
    messages_indexed: int = 0
    skipped_no_account: int = 0
    skipped_unreadable: int = 0
    accounts: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the command line."""
        return (
            f"files_read={self.files_read} messages_indexed={self.messages_indexed} "
            f"skipped_no_account={self.skipped_no_account} "
            f"skipped_unreadable={self.skipped_unreadable} accounts={len(self.accounts)}"
        )


@dataclass
class ReadTally:
    """Counts kept while reading files, for the load report (reading itself is a generator)."""

    files_read: int = 0
    unreadable: int = 0


# --------------------------------------------------------------------------------------------
# Parsing one message


def parse_message(
    raw: bytes,
    account: str | None = None,
    account_header: str | None = DEFAULT_ACCOUNT_HEADER,
) -> dict[str, Any] | None:
    """Turn raw RFC 822 bytes into a source document, or None when no account can be resolved.

    ``account``, when given, is used as is (stripped); otherwise the first ``account_header``
    header, stripped and lower-cased, is the account. Pure: no I/O, no logging.
    """
    headers = _parse_headers(raw)
    resolved_account = _resolve_account(headers, account, account_header)
    if not resolved_account:
        return None
    document: dict[str, Any] = {"account": resolved_account}
    message_id = _first_header(headers, "Message-ID")
    if message_id:
        document["messageId"] = message_id
    date = _first_header(headers, "Date")
    if date:
        document["date"] = _iso_date(date)
    for field_name, header_name in _ADDRESS_FIELDS:
        addresses = _addresses(headers, header_name)
        if addresses is not None:
            document[field_name] = {"address": addresses}
    subject = _first_header(headers, "Subject")
    if subject is not None:
        document["subject"] = _decoded_text(subject)
    for header_name, field_name in HEADER_SOURCE_FIELDS:
        value = _first_header(headers, header_name)
        if value is not None and value.strip():
            document[field_name] = _decoded_text(value).strip()
    return document


def utc_now_iso() -> str:
    """The time a document is indexed, ISO-8601 UTC to the second with a Z (the `indexed_at` stamp)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def source_document_id(account: str, raw: bytes) -> str:
    """The deterministic ``_id``: a reload overwrites, the same bytes in two mailboxes do not clash."""
    digest = hashlib.sha256(account.encode("utf-8") + b"\0" + raw)
    return digest.hexdigest()[:SOURCE_ID_LENGTH]


def _parse_headers(raw: bytes) -> Message:
    """Parse only the header block: the body is never stored, and it may be in another charset."""
    text = _decode_header_bytes(_header_block(raw))
    return Parser(policy=compat32).parsestr(text, headersonly=True)


def _header_block(raw: bytes) -> bytes:
    if raw.startswith((b"\n", b"\r\n")):
        return b""
    end = _HEADER_END.search(raw)
    return raw[: end.start()] if end else raw


def _decode_header_bytes(block: bytes) -> str:
    """UTF-8 first (RFC 6532 allows it in headers); Latin-1 otherwise, which never fails."""
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("latin-1")


def _unfold(value: str) -> str:
    return _FOLDED_LINE_BREAK.sub("", value).strip()


def _first_header(headers: Message, name: str) -> str | None:
    """The first occurrence, unfolded and stripped; None when the header is absent."""
    value = headers.get(name)
    return None if value is None else _unfold(str(value))


def _resolve_account(headers: Message, account: str | None, account_header: str | None) -> str | None:
    if account is not None and account.strip():
        return account.strip()
    if not account_header:
        return None
    value = _first_header(headers, account_header)
    return value.lower() if value else None


def _iso_date(value: str) -> str:
    """ISO-8601 with the header's offset (naive when it has none); the raw text when unparseable."""
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError, IndexError, OverflowError):
        return value


def _addresses(headers: Message, name: str) -> list[str] | None:
    """Every addr-spec of every occurrence of the header, as written; None when it is absent."""
    values = headers.get_all(name)
    if values is None:
        return None
    pairs = getaddresses([_unfold(str(value)) for value in values], **_GETADDRESSES_KEYWORDS)
    return [address.strip() for _display_name, address in pairs if address.strip()]


def _decoded_text(value: str) -> str:
    """Decode RFC 2047 encoded words; keep the text as written when they are broken."""
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError):
        return value


# --------------------------------------------------------------------------------------------
# Reading files


def iter_raw_messages(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    tally: ReadTally | None = None,
) -> Iterator[tuple[str, bytes]]:
    """Yield (origin label, raw bytes) for every message under the paths, in a stable order.

    Each path may be a maildir, a directory tree (one maildir per account, folders of
    .eml/.txt files, mbox files, or a mix) or a single message or mbox file. The origin label is
    what ``account_from="folder"`` uses as the account: the name of the outermost maildir, the
    mbox file's name without ``.mbox``, or for loose message files the folder directly under the
    given directory (the given directory itself for files directly in it, the file's folder when
    a single file is given). Files that cannot be read are logged, counted in ``tally`` and
    skipped.
    """
    tally = tally if tally is not None else ReadTally()
    for path in _as_path_list(paths):
        if path.is_dir():
            yield from _iter_directory(path, path.name, tally, inside_maildir=False, is_top=True)
        else:
            yield from _iter_file(path, path.parent.name, tally)


def _as_path_list(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(path) for path in paths]


def _is_maildir(directory: Path) -> bool:
    """``cur`` and ``new`` subfolders; ``tmp`` is not required (version control drops empty ones)."""
    return all((directory / folder).is_dir() for folder in MAILDIR_MESSAGE_FOLDERS)


def _sorted_entries(directory: Path, tally: ReadTally) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except OSError as error:
        log.warning("cannot list %s: %s", directory, error)
        tally.unreadable += 1
        return []


def _iter_directory(
    directory: Path, label: str, tally: ReadTally, *, inside_maildir: bool, is_top: bool
) -> Iterator[tuple[str, bytes]]:
    """Walk one directory; a maildir met outside any other maildir names its messages' account."""
    is_maildir = _is_maildir(directory)
    if is_maildir and not inside_maildir:
        label, inside_maildir = directory.name, True
    for entry in _sorted_entries(directory, tally):
        if entry.is_symlink():
            continue  # avoids loops and reading the same tree twice
        if entry.name.startswith(".") and not (inside_maildir and entry.is_dir()):
            # Hidden files are OS or editor droppings (.DS_Store, .gitkeep); hidden folders are
            # mail only as Maildir++ subfolders (.Sent), never elsewhere (.git holds hashed blobs).
            continue
        if entry.is_dir():
            if is_maildir and entry.name in MAILDIR_MESSAGE_FOLDERS:
                yield from _iter_maildir_folder(entry, label, tally)
            elif is_maildir and entry.name == "tmp":
                continue  # deliveries in progress, not messages yet
            else:
                child_label = entry.name if is_top and not inside_maildir else label
                yield from _iter_directory(
                    entry, child_label, tally, inside_maildir=inside_maildir, is_top=False
                )
        elif entry.is_file():
            yield from _iter_file(entry, label, tally)


def _iter_maildir_folder(folder: Path, label: str, tally: ReadTally) -> Iterator[tuple[str, bytes]]:
    """Every file of a maildir's cur/new is one message, whatever its name."""
    for entry in _sorted_entries(folder, tally):
        if entry.is_file() and not entry.is_symlink() and not entry.name.startswith("."):
            raw = _read_file(entry, tally)
            if raw is not None:
                yield label, raw


def _iter_file(path: Path, label: str, tally: ReadTally) -> Iterator[tuple[str, bytes]]:
    """One loose file: an mbox (by suffix or by its first line), a message, or not mail at all."""
    if path.suffix.lower() == MBOX_SUFFIX or _starts_like_mbox(path):
        mbox_label = path.name[: -len(MBOX_SUFFIX)] if path.suffix.lower() == MBOX_SUFFIX else path.stem
        yield from _iter_mbox(path, mbox_label, tally)
    elif path.suffix.lower() in MESSAGE_SUFFIXES:
        raw = _read_file(path, tally)
        if raw is not None:
            yield label, raw
    else:
        log.debug("not a mail file, ignored: %s", path)


def _starts_like_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(MBOX_SEPARATOR)) == MBOX_SEPARATOR
    except OSError:
        return False  # reported when the file is read as a message


def _read_file(path: Path, tally: ReadTally) -> bytes | None:
    """The whole file (one message is small); None, logged and counted when unreadable or empty."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        log.warning("unreadable message file %s: %s", path, error)
        tally.unreadable += 1
        return None
    tally.files_read += 1
    if not raw.strip():
        log.warning("empty message file %s", path)
        tally.unreadable += 1
        return None
    return raw


def _iter_mbox(path: Path, label: str, tally: ReadTally) -> Iterator[tuple[str, bytes]]:
    try:
        handle = path.open("rb")
    except OSError as error:
        log.warning("unreadable mbox %s: %s", path, error)
        tally.unreadable += 1
        return
    with handle:
        tally.files_read += 1
        for raw in split_mbox(handle):
            yield label, raw


def split_mbox(handle: BinaryIO) -> Iterator[bytes]:
    """Split an mbox stream into messages, one line at a time.

    A separator is a line starting with ``From `` at the start of the file or after an empty line
    (RFC 4155), so an unescaped "From " inside a paragraph does not split a message. Escaped lines
    (``>From ``, mboxrd) lose one ``>``; the empty line ending each message is not part of it.
    """
    lines: list[bytes] = []
    previous_blank = True
    for line in handle:
        if previous_blank and line.startswith(MBOX_SEPARATOR):
            message = _mbox_message(lines)
            if message is not None:
                yield message
            lines = []
            previous_blank = False
            continue
        previous_blank = line in (b"\n", b"\r\n")
        lines.append(line[1:] if _MBOX_ESCAPED_SEPARATOR.match(line) else line)
    message = _mbox_message(lines)
    if message is not None:
        yield message


def _mbox_message(lines: list[bytes]) -> bytes | None:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    raw = b"".join(lines)
    return raw if raw.strip() else None


# --------------------------------------------------------------------------------------------
# Writing to the index


def ensure_source_index(es: Any, index: str = DEFAULT_SOURCE_INDEX) -> bool:
    """Create the source index with its explicit mapping when missing; True when it was created.

    An existing index is left as it is: it may hold harvested data with extra fields.
    """
    if es.indices.exists(index=index):
        return False
    try:
        es.indices.create(index=index, mappings=SOURCE_MAPPING)
    except BadRequestError as error:
        if error.error != "resource_already_exists_exception":
            raise
        return False  # created concurrently by another loader
    log.info("created source index %s", index)
    return True


def load_mail(
    es: Any,
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    index: str = DEFAULT_SOURCE_INDEX,
    account: str | None = None,
    account_header: str = DEFAULT_ACCOUNT_HEADER,
    account_from: str | None = None,
    chunk_size: int = 1000,
) -> LoadReport:
    """Index every message under ``paths`` into ``index``, one document per message and account.

    The account is ``account`` when given, else the origin label (``account_from="folder"``), else
    the ``account_header`` header. Messages without an account and unreadable files are skipped
    and counted; any bulk item that fails raises :class:`BulkLoadError` after the load finishes.
    """
    folder_accounts = _check_account_options(account, account_from)
    path_list = _as_path_list(paths)
    missing = [str(path) for path in path_list if not path.exists()]
    if missing:
        raise FileNotFoundError(f"mail paths not found: {missing}")
    ensure_source_index(es, index)
    log.info("loading mail from %s into %s", [str(path) for path in path_list], index)
    tally = ReadTally()
    report = LoadReport()
    accounts: set[str] = set()
    messages = iter_raw_messages(path_list, tally)
    actions = _index_actions(messages, index, account, account_header, folder_accounts, report, accounts)
    failures: list[dict[str, Any]] = []
    failure_count = 0
    for succeeded, item in streaming_bulk(
        es, actions, chunk_size=chunk_size, raise_on_error=False, max_retries=3, yield_ok=True
    ):
        if succeeded:
            report.messages_indexed += 1
        else:
            failure_count += 1
            if len(failures) < _FAILURE_SAMPLES:
                failures.append(item)
    report.files_read = tally.files_read
    report.skipped_unreadable += tally.unreadable
    report.accounts = sorted(accounts)
    es.indices.refresh(index=index)
    log.info("loaded into %s: %s", index, report.summary())
    if failure_count:
        raise BulkLoadError(
            f"{failure_count} message(s) failed to index into {index} "
            f"(report: {report.summary()}); first failures: {failures}"
        )
    return report


def _check_account_options(account: str | None, account_from: str | None) -> bool:
    """Validate how accounts are found; True when they come from folder names."""
    if account_from not in (None, *ACCOUNT_FROM_CHOICES):
        raise ValueError(f"account_from must be one of {ACCOUNT_FROM_CHOICES}, got {account_from!r}")
    if account is not None and account_from == "folder":
        raise ValueError("give either an account name or account_from='folder', not both")
    if account is not None and not account.strip():
        raise ValueError("account name must not be empty")
    return account_from == "folder"


def _index_actions(
    messages: Iterator[tuple[str, bytes]],
    index: str,
    account: str | None,
    account_header: str,
    folder_accounts: bool,
    report: LoadReport,
    accounts: set[str],
) -> Iterator[dict[str, Any]]:
    """Bulk actions for the messages; skipped ones are counted in ``report`` on the way."""
    for origin, raw in messages:
        given_account = origin.strip().lower() if folder_accounts else account
        try:
            document = parse_message(raw, given_account, account_header)
        except Exception as error:  # one broken message must not stop a load
            log.warning("unparseable message from %s: %s", origin, error)
            report.skipped_unreadable += 1
            continue
        if document is None:
            report.skipped_no_account += 1
            continue
        accounts.add(document["account"])
        document[ARRIVAL_FIELD] = utc_now_iso()
        yield {
            "_op_type": "index",
            "_index": index,
            "_id": source_document_id(document["account"], raw),
            "_source": document,
        }


# --------------------------------------------------------------------------------------------
# Command line


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mailforce.tools.loader",
        description="Load maildir trees, mbox files and .eml/.txt trees into the source index.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="maildir, directory, mbox or message file")
    parser.add_argument("--index", default=DEFAULT_SOURCE_INDEX, help="source index (default: %(default)s)")
    accounts = parser.add_mutually_exclusive_group()
    accounts.add_argument("--account", help="the account of every message loaded")
    accounts.add_argument(
        "--account-header",
        default=DEFAULT_ACCOUNT_HEADER,
        help="header holding the account, lower-cased (default: %(default)s)",
    )
    accounts.add_argument(
        "--account-from", choices=ACCOUNT_FROM_CHOICES, help="'folder': the maildir/mbox/folder name"
    )
    parser.add_argument("--url", help="cluster URL; without it the Airflow connection is used")
    parser.add_argument("--engine", default="auto", choices=("auto", "elasticsearch", "es8", "es9", "opensearch", "osmem"))
    parser.add_argument("--conn-id", default=None, help="Airflow connection id (default: elasticsearch_default)")
    parser.add_argument("--chunk-size", type=int, default=1000, help="documents per bulk request")
    return parser


def _client_for(arguments: argparse.Namespace) -> Any:
    from mailforce.es.client import DEFAULT_CONN_ID, ClientOptions, MailforceElasticsearchHook, build_client

    if arguments.url:
        return build_client(ClientOptions(url=arguments.url, engine=arguments.engine))
    return MailforceElasticsearchHook(arguments.conn_id or DEFAULT_CONN_ID).get_conn()


def main(argv: list[str] | None = None) -> int:
    arguments = _argument_parser().parse_args(argv)
    configure_console_logging(logging.INFO, fmt="%(asctime)s %(levelname)s %(name)s: %(message)s")
    client = _client_for(arguments)
    try:
        report = load_mail(
            client,
            arguments.paths,
            index=arguments.index,
            account=arguments.account,
            account_header=arguments.account_header,
            account_from=arguments.account_from,
            chunk_size=arguments.chunk_size,
        )
    finally:
        client.close()
    print(f"{arguments.index}: {report.summary()} ({', '.join(report.accounts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
