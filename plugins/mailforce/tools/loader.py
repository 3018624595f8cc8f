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
        [--account NAME] [--account-header HEADER] [--account-from auto|header|folder|owner]
        [--url URL --engine auto|es8|es9|opensearch|osmem] [--conn-id ID]

Which account a message belongs to (``--account-from auto``, the default), first that applies:
``--account NAME``; the ``X-Origin`` header (the Enron corpus carries it; ``--account-header``);
the name of the mbox file or Maildir folder, unless it is a generic folder name ("Inbox", "All mail
Including Spam and Trash", Apple Mail's "mbox"); the mailbox owner's address (the address on most
of that input's messages). The summary says, per input, which one was used (docs/OWN_MAIL.md).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
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

from mailforce.core.addresses import normalise_address
from mailforce.tools.console import CliError, CommandParser, add_connection_arguments, configure_console_logging, connect, run_command

log = logging.getLogger(__name__)

DEFAULT_SOURCE_INDEX = "search-shinobi-email"
DEFAULT_ACCOUNT_HEADER = "X-Origin"
PROG = "loader"
# auto: the header, else a non-generic mbox/Maildir/folder name, else the owner's address.
ACCOUNT_FROM_CHOICES = ("auto", "header", "folder", "owner")
# Folder and mbox names that say what a folder holds, not whose it is: Gmail Takeout, Thunderbird,
# Apple Mail ("INBOX.mbox/mbox"), Outlook exports. Such an input takes its owner's address instead.
GENERIC_FOLDER_NAMES = frozenset({
    "all mail including spam and trash", "all mail", "inbox", "sent", "sent mail", "sent items", "sent messages",
    "drafts", "archive", "archives", "trash", "junk", "spam", "outbox", "important", "starred", "templates",
    "deleted items", "deleted messages", "unsent messages", "local folders", "mbox", "mail", "maildir",
    "messages", "export", "takeout", "downloads", "tmp", "cur", "new", "",
})
MAX_REPORTED_UNREADABLE = 20  # unreadable inputs named in the report; the count is always complete
HEADER_SCAN_BYTES = 8192  # how much of a file is looked at to tell mail from something else
_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")  # an RFC 5322 field name then a colon
_MAIL_HEADERS = ("From", "To", "Cc", "Date", "Message-ID", "Subject")

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


@dataclass(frozen=True)
class Origin:
    """Where a message came from: the input that names its account when no header does.

    ``kind`` is ``maildir`` (a folder with cur/ and new/), ``mbox`` (one mbox file), ``folder``
    (loose message files under a folder given or found) or ``file`` (one message file given)."""

    label: str
    kind: str
    path: str


@dataclass(frozen=True)
class Unreadable:
    """A file (or one message of an mbox) that could not be read as mail, and why."""

    path: str
    reason: str

    def describe(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class InputReport:
    """What one input (mbox file, Maildir, folder) gave, and where its messages' accounts came from."""

    path: str
    messages: int = 0
    sources: Counter = field(default_factory=Counter)  # (account, how it was found) -> messages
    owner: str | None = None

    def describe(self, shown_path: str | None = None) -> str:
        """One line: "sample/mail/kunai-raj: 93 messages, account kunai-raj (from the X-Origin header)";
        ``shown_path`` replaces the path (a shorter form of it)."""
        path = shown_path or self.path
        if not self.sources:
            return f"{path}: 0 messages loaded"
        parts = [f"{account} (from {how}{'' if count == self.messages else f', {count} messages'})"
                 for (account, how), count in self.sources.most_common()]
        noun = "account" if len(parts) == 1 else "accounts"
        return f"{path}: {self.messages} messages, {noun} {', '.join(parts)}"


@dataclass
class LoadReport:
    """What one load did; every message read ends up in exactly one of the three outcomes.

    ``skipped_unreadable`` counts files (and mbox messages) that are not readable mail, apart from
    messages skipped for want of an account; ``unreadable`` names the first of them with the reason."""

    files_read: int = 0
    messages_indexed: int = 0
    skipped_no_account: int = 0
    skipped_unreadable: int = 0
    accounts: list[str] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list, compare=False)
    inputs: list[InputReport] = field(default_factory=list, compare=False)

    @property
    def owners(self) -> list[str]:
        """The mailbox owners' addresses, one per input that has one."""
        return sorted({entry.owner for entry in self.inputs if entry.owner})

    def summary(self) -> str:
        """One line for logs and the command line."""
        return (
            f"files_read={self.files_read} messages_indexed={self.messages_indexed} "
            f"skipped_no_account={self.skipped_no_account} "
            f"skipped_unreadable={self.skipped_unreadable} accounts={len(self.accounts)}"
        )


class NothingLoaded(CliError):
    """A load that indexed no message from its input; the message says why and how to fix it.

    ``report`` is the load's report (what was read, what was unreadable)."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ReadTally:
    """What reading files met, for the load report (reading itself is a generator)."""

    files_read: int = 0
    unreadable_count: int = 0
    unreadable: list[Unreadable] = field(default_factory=list)

    def mark_unreadable(self, path: Path | str, reason: str) -> None:
        """Count an unreadable file or message, and keep the first few with their reason."""
        self.unreadable_count += 1
        if len(self.unreadable) < MAX_REPORTED_UNREADABLE:
            self.unreadable.append(Unreadable(str(path), reason))


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
    return document_from_headers(headers, resolved_account)


def document_from_headers(headers: Message, account: str) -> dict[str, Any]:
    """The source document of a message of ``account`` from its parsed headers (pure)."""
    document: dict[str, Any] = {"account": account}
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


def why_not_mail(raw: bytes) -> str | None:
    """Why these bytes are not an RFC 822 message (binary, no header lines), or None when they are."""
    head = raw[:HEADER_SCAN_BYTES]
    if b"\0" in head:
        return "not mail: binary content"
    first_line = head.lstrip(b"\r\n").split(b"\n", 1)[0]
    if not _HEADER_LINE.match(first_line):
        return "not mail: it does not begin with header lines such as 'From:' or 'Date:'"
    headers = _parse_headers(raw)
    if not any(headers.get(name) is not None for name in _MAIL_HEADERS):
        return "not mail: none of the headers From, To, Cc, Date, Message-ID, Subject"
    return None


def account_name(label: str) -> str | None:
    """The account a mbox file or Maildir folder name gives ("Kunai Jim" -> "kunai-jim"); None for a
    generic name ("Inbox", "All mail Including Spam and Trash"), which says nothing about whose it is."""
    name = "-".join(label.strip().lower().split())
    return None if " ".join(label.strip().lower().split()) in GENERIC_FOLDER_NAMES else name


def owner_address(address_counts: Counter) -> str | None:
    """The address on most messages (ties: the first alphabetically); None when there is none."""
    if not address_counts:
        return None
    return min(address_counts.items(), key=lambda item: (-item[1], item[0]))[0]


def message_addresses(headers: Message) -> set[str]:
    """The normalised valid addresses of From, To and Cc (each once)."""
    found: set[str] = set()
    for _field_name, header_name in _ADDRESS_FIELDS:
        for address in _addresses(headers, header_name) or ():
            normalised = normalise_address(address)
            if normalised:
                found.add(normalised)
    return found


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
) -> Iterator[tuple[Origin, bytes]]:
    """Yield (origin, raw bytes) for every message under the paths, in a stable order.

    Each path may be a maildir, a directory tree (one maildir per account, folders of
    .eml/.txt files, mbox files, or a mix) or a single message or mbox file. The origin's label is
    what names the account when no header does: the name of the outermost maildir, the mbox
    file's name without ``.mbox``, or for loose message files the folder directly under the
    given directory (the given directory itself for files directly in it or under a generic
    folder such as inbox/, the file's folder when a single file is given). Files that are not readable mail are counted in ``tally`` with the
    reason, and skipped.
    """
    tally = tally if tally is not None else ReadTally()
    for path in _as_path_list(paths):
        if path.is_dir():
            origin = Origin(path.name, "folder", str(path))
            yield from _iter_directory(path, origin, tally, inside_maildir=False, is_top=True)
        else:
            yield from _iter_file(path, Origin(path.parent.name, "file", str(path)), tally, given=True)


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
        tally.mark_unreadable(directory, f"cannot list the folder: {error.strerror or error}")
        return []


def _iter_directory(
    directory: Path, origin: Origin, tally: ReadTally, *, inside_maildir: bool, is_top: bool
) -> Iterator[tuple[Origin, bytes]]:
    """Walk one directory; a maildir met outside any other maildir names its messages' account."""
    is_maildir = _is_maildir(directory)
    if is_maildir and not inside_maildir:
        origin, inside_maildir = Origin(directory.name, "maildir", str(directory)), True
    for entry in _sorted_entries(directory, tally):
        if entry.is_symlink():
            continue  # avoids loops and reading the same tree twice
        if entry.name.startswith(".") and not (inside_maildir and entry.is_dir()):
            # Hidden files are OS or editor droppings (.DS_Store, .gitkeep); hidden folders are
            # mail only as Maildir++ subfolders (.Sent), never elsewhere (.git holds hashed blobs).
            continue
        if entry.is_dir():
            if is_maildir and entry.name in MAILDIR_MESSAGE_FOLDERS:
                yield from _iter_maildir_folder(entry, origin, tally)
            elif is_maildir and entry.name == "tmp":
                continue  # deliveries in progress, not messages yet
            else:
                # A folder under the given one names its own account ("kunai-ann/"), unless its name
                # is generic ("inbox/", "sent/"): then it belongs to the given folder's account.
                names_account = is_top and not inside_maildir and account_name(entry.name) is not None
                child = Origin(entry.name, "folder", str(entry)) if names_account else origin
                yield from _iter_directory(entry, child, tally, inside_maildir=inside_maildir, is_top=False)
        elif entry.is_file():
            yield from _iter_file(entry, origin, tally)


def _iter_maildir_folder(folder: Path, origin: Origin, tally: ReadTally) -> Iterator[tuple[Origin, bytes]]:
    """Every file of a maildir's cur/new is one message, whatever its name."""
    for entry in _sorted_entries(folder, tally):
        if entry.is_file() and not entry.is_symlink() and not entry.name.startswith("."):
            raw = _read_message_file(entry, tally)
            if raw is not None:
                yield origin, raw


def _iter_file(path: Path, origin: Origin, tally: ReadTally, *, given: bool = False) -> Iterator[tuple[Origin, bytes]]:
    """One file: an mbox (by suffix or by its first line), a message, or not mail at all (a file
    found in a folder with another suffix is ignored; a file given by name is read and judged)."""
    if path.suffix.lower() == MBOX_SUFFIX or _starts_like_mbox(path):
        mbox_label = path.name[: -len(MBOX_SUFFIX)] if path.suffix.lower() == MBOX_SUFFIX else path.stem
        yield from _iter_mbox(path, Origin(mbox_label, "mbox", str(path)), tally)
    elif given or path.suffix.lower() in MESSAGE_SUFFIXES:
        raw = _read_message_file(path, tally)
        if raw is not None:
            yield origin, raw
    else:
        log.debug("not a mail file, ignored: %s", path)


def _starts_like_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(MBOX_SEPARATOR)) == MBOX_SEPARATOR
    except OSError:
        return False  # reported when the file is read as a message


def _read_message_file(path: Path, tally: ReadTally) -> bytes | None:
    """The whole file (one message is small); None, counted with its reason, when it is not mail."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        tally.mark_unreadable(path, f"cannot read it: {error.strerror or error}")
        return None
    tally.files_read += 1
    reason = "empty file" if not raw.strip() else why_not_mail(raw)
    if reason is not None:
        tally.mark_unreadable(path, reason)
        return None
    return raw


def _iter_mbox(path: Path, origin: Origin, tally: ReadTally) -> Iterator[tuple[Origin, bytes]]:
    """The messages of one mbox file; one that is cut off inside its headers or is not mail is
    counted unreadable (file and message number), and a file not starting with "From " is not an mbox."""
    try:
        handle = path.open("rb")
    except OSError as error:
        tally.mark_unreadable(path, f"cannot read it: {error.strerror or error}")
        return
    with handle:
        tally.files_read += 1
        start = handle.read(HEADER_SCAN_BYTES)
        if not start.strip():
            tally.mark_unreadable(path, "empty file")
            return
        if not start.startswith(MBOX_SEPARATOR):
            reason = "binary content" if b"\0" in start else "its first line is not a 'From ' separator"
            tally.mark_unreadable(path, f"not an mbox: {reason}")
            return
        handle.seek(0)
        for number, raw in enumerate(split_mbox(handle), 1):
            if not raw.endswith(b"\n") and not _HEADER_END.search(raw):
                tally.mark_unreadable(f"{path} (message {number})", "truncated: the file ends inside this message's headers")
                continue
            reason = why_not_mail(raw)
            if reason is not None:
                tally.mark_unreadable(f"{path} (message {number})", reason)
                continue
            if not raw.endswith(b"\n"):
                log.warning("%s ends without a final newline: it may be truncated; its last message was loaded", path)
            yield origin, raw


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

    The account is ``account`` when given; otherwise, as ``account_from`` says (default ``auto``:
    the ``account_header`` header, else the mbox/Maildir/folder name unless generic, else the
    input's owner address; ``header``, ``folder``, ``owner``: that one only). Files that are not
    readable mail are counted and named; messages without an account are counted. Raises
    :class:`NothingLoaded` when nothing was indexed, and :class:`BulkLoadError` after the load when
    any bulk item failed.
    """
    account_from = _check_account_options(account, account_from)
    path_list = _as_path_list(paths)
    missing = [str(path) for path in path_list if not path.exists()]
    if missing:
        raise FileNotFoundError(f"mail paths not found: {missing}")
    owners = survey_owners(path_list)
    ensure_source_index(es, index)
    log.info("loading mail from %s into %s", [str(path) for path in path_list], index)
    tally = ReadTally()
    report = LoadReport()
    inputs: dict[str, InputReport] = {}
    messages = iter_raw_messages(path_list, tally)
    resolver = AccountResolver(account, account_header, account_from, owners)
    actions = _index_actions(messages, index, resolver, report, inputs)
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
    report.skipped_unreadable += tally.unreadable_count
    report.unreadable = list(tally.unreadable)
    report.accounts = sorted({name for entry in inputs.values() for name, _how in entry.sources})
    report.inputs = list(inputs.values())
    es.indices.refresh(index=index)
    for problem in report.unreadable:
        log.warning("unreadable: %s", problem.describe())
    log.info("loaded into %s: %s", index, report.summary())
    if failure_count:
        raise BulkLoadError(
            f"{failure_count} message(s) failed to index into {index} "
            f"(report: {report.summary()}); first failures: {failures}"
        )
    if report.messages_indexed == 0:
        raise NothingLoaded(nothing_loaded_reason(report, path_list, account_header), report)
    return report


def nothing_loaded_reason(report: LoadReport, paths: Sequence[Path], account_header: str) -> str:
    """Why a load indexed nothing, and what to do, in a sentence or two."""
    where = ", ".join(str(path) for path in paths)
    if report.skipped_no_account:
        return (f"loaded 0 messages from {where}: none of its {report.skipped_no_account} messages named an account "
                f"(no {account_header} header). Give the account: --account NAME, or --account-from auto.")
    if report.skipped_unreadable:
        named = "; ".join(problem.describe() for problem in report.unreadable[:3])
        more = "" if report.skipped_unreadable <= 3 else f"; and {report.skipped_unreadable - 3} more"
        return (f"nothing could be read from {where}: {report.skipped_unreadable} unreadable ({named}{more}). "
                "Give a Maildir, an mbox file or a folder of .eml files, as exported by the mail program.")
    return (f"found no mail in {where}: expected Maildir folders (cur/, new/), mbox files, or .eml/.txt "
            "message files.")


def survey_owners(paths: Sequence[Path]) -> dict[Origin, str]:
    """Each input's owner: the address on most of its messages (a first, headers-only pass)."""
    counts: dict[Origin, Counter] = {}
    for origin, raw in iter_raw_messages(paths, ReadTally()):
        try:
            addresses = message_addresses(_parse_headers(raw))
        except Exception:  # noqa: BLE001 - an odd message names no owner; the load counts it
            continue
        counts.setdefault(origin, Counter()).update(addresses)
    return {origin: owner for origin, counted in counts.items() if (owner := owner_address(counted))}


@dataclass(frozen=True)
class AccountResolver:
    """Which account a message belongs to, and how that was found (said per input in the report)."""

    account: str | None
    account_header: str
    account_from: str
    owners: dict[Origin, str]

    def resolve(self, headers: Message, origin: Origin) -> tuple[str | None, str]:
        """(account, how it was found); (None, why not) when no rule of ``account_from`` applies."""
        if self.account is not None:
            return self.account.strip(), "--account"
        if self.account_from in ("auto", "header"):
            value = _first_header(headers, self.account_header)
            if value:
                return value.lower(), f"the {self.account_header} header"
            if self.account_from == "header":
                return None, f"no {self.account_header} header"
        if self.account_from == "folder":
            return origin.label.strip().lower(), f"the {_kind_name(origin)} name"
        if self.account_from == "auto" and origin.kind != "file" and (name := account_name(origin.label)):
            return name, f"the {_kind_name(origin)} name"
        owner = self.owners.get(origin)
        if owner:
            return owner, "the mailbox owner's address"
        return None, "no address on its messages"


def _kind_name(origin: Origin) -> str:
    return {"maildir": "Maildir folder", "mbox": "mbox file"}.get(origin.kind, "folder")


def _check_account_options(account: str | None, account_from: str | None) -> str:
    """Validate how accounts are found; the ``account_from`` rule to use."""
    if account_from not in (None, *ACCOUNT_FROM_CHOICES):
        raise ValueError(f"account_from must be one of {ACCOUNT_FROM_CHOICES}, got {account_from!r}")
    if account is not None and account_from not in (None, "auto"):
        raise ValueError(f"give either an account name or account_from={account_from!r}, not both")
    if account is not None and not account.strip():
        raise ValueError("account name must not be empty")
    return account_from or "auto"


def _index_actions(
    messages: Iterator[tuple[Origin, bytes]],
    index: str,
    resolver: AccountResolver,
    report: LoadReport,
    inputs: dict[str, InputReport],
) -> Iterator[dict[str, Any]]:
    """Bulk actions for the messages; skipped ones are counted in ``report`` on the way, and each
    input's report says where its accounts came from."""
    for origin, raw in messages:
        entry = inputs.setdefault(origin.path, InputReport(origin.path, owner=resolver.owners.get(origin)))
        try:
            headers = _parse_headers(raw)
            account, how = resolver.resolve(headers, origin)
            document = document_from_headers(headers, account) if account else None
        except Exception as error:  # one broken message must not stop a load
            log.warning("unparseable message from %s: %s", origin.path, error)
            report.skipped_unreadable += 1
            continue
        if document is None:
            report.skipped_no_account += 1
            continue
        entry.messages += 1
        entry.sources[(account, how)] += 1
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
    parser = CommandParser(
        prog="python -m mailforce.tools.loader",
        description="Load maildir trees, mbox files and .eml/.txt trees into the source index.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="maildir, directory, mbox or message file")
    parser.add_argument("--index", default=DEFAULT_SOURCE_INDEX, help="source index (default: %(default)s)")
    parser.add_argument("--account", help="the account of every message loaded (wins over any header)")
    parser.add_argument("--account-header", default=DEFAULT_ACCOUNT_HEADER,
                        help="header holding the account, lower-cased (default: %(default)s)")
    parser.add_argument("--account-from", choices=ACCOUNT_FROM_CHOICES, default="auto",
                        help="auto (default): the header, else the mbox/Maildir/folder name, else the owner's "
                        "address; or only one of them")
    add_connection_arguments(parser)
    parser.add_argument("--chunk-size", type=int, default=1000, help="documents per bulk request")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _argument_parser().parse_args(argv)
    configure_console_logging(logging.INFO, fmt="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(PROG, lambda: _load_command(arguments), debug=arguments.debug)


def _load_command(arguments: argparse.Namespace) -> int:
    """Check the paths, connect, load, print the summary and, per input, where its accounts came from."""
    if arguments.account is not None and arguments.account_from != "auto":
        raise CliError("give either --account NAME or --account-from, not both")
    missing = [path for path in arguments.paths if not Path(path).exists()]
    if missing:
        raise CliError(f"mail not found: {', '.join(missing)}. Check the path.")
    from mailforce.settings import load_settings

    client = connect(arguments.url, arguments.engine, arguments.conn_id or load_settings().conn_id)
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
    for entry in report.inputs:
        print(f"  {entry.describe()}")
    for problem in report.unreadable:
        print(f"  unreadable: {problem.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
