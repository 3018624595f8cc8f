#!/usr/bin/env python3
"""Writes the synthetic sample mailboxes under sample/mail/ (deterministic: same bytes every run).

Why it exists: the pipeline needs a small, shareable data set that looks like a real company's
mail (a few mailboxes, a long tail of outside correspondents, the usual dirt) without shipping
anyone's real mail. Everything here is invented; the random generator is seeded, so the committed
output can be regenerated and diffed.

    python scripts/make_sample_mail.py [--output sample/mail]

Layout written (one account per format, so the loader's format detection is exercised):

- ``kunai-jim/``   a maildir (cur/, new/, tmp/) with a nested Maildir++ folder ``.Sent/``
- ``kunai-sara.mbox``  an mbox file (a body line starting with "From " is escaped as ">From ")
- ``kunai-ken/``, ``kunai-ann/``, ``kunai-raj/``  folders of .eml files (ann's with CRLF line ends)

Every message carries ``X-Origin: <account>``. The dirt: display names with quotes and commas,
mixed-case addresses, messages without To, Cc lists, invalid addresses (no @, no dot in the
domain), an empty group "undisclosed-recipients:;", a folded multi-line To, a RFC 2047 unicode
display name, a raw UTF-8 address local part, one message to 60 recipients, one message in two
mailboxes (same Message-ID), one message filed twice in one mailbox, an unparseable Date, a Date
without zone (-0000), a message without Date, and an X-Origin in odd case with spaces.
"""

from __future__ import annotations

import argparse
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

SEED = 20240611
COMPANY_DOMAIN = "kunaico.com"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "sample" / "mail"
PERIOD_START = datetime(2024, 1, 1, tzinfo=timezone.utc)
PERIOD_SECONDS = int((datetime(2026, 1, 1, tzinfo=timezone.utc) - PERIOD_START).total_seconds())
ZONE_OFFSETS_HOURS = (-8, -7, -5, -4, 0, 1, 2, 5.5, 9)

# Outside domains, most popular first: popularity follows a Zipf-like law over this order.
OUTSIDE_DOMAINS = (
    "acme-logistics.com", "bluefin-capital.com", "cedar-analytics.io", "delta-grid.net",
    "evergreen-legal.com", "foxglove-media.co.uk", "granite-insure.com", "helios-solar.de",
    "ironbark-mining.com.au", "juniper-health.org", "kestrel-aero.com", "lumen-labs.ai",
    "meridian-bank.ch", "nimbus-cloud.io", "orchard-foods.com", "pinecrest-realty.com",
    "quarry-stone.net", "riverbend-pharma.com", "saltmarsh-shipping.nl", "tidewater-energy.com",
    "umber-design.fr", "vantage-consult.com", "willow-edu.org", "andino.com.co", "yuzu-trading.jp",
)
FIRST_NAMES = (
    "Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farah", "Gavin", "Hana", "Ivan", "Jade",
    "Kofi", "Lena", "Marco", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Soren", "Tara",
    "Umar", "Vera", "Wes", "Xenia", "Yusuf", "Zara", "Jane", "Liam", "Mei", "Pablo",
)
LAST_NAMES = (
    "Abbott", "Brandt", "Castillo", "Doe", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Novak", "Okafor", "Petrov", "Quint", "Rossi",
    "Sato", "Tanaka", "Ueda", "Varga", "Weber", "Yilmaz", "Zhang", "Nguyen", "Silva", "Khan",
)
SUBJECT_TOPICS = (
    "Q3 forecast", "contract renewal", "site visit", "invoice 4471", "pilot results", "pricing",
    "onboarding", "kickoff agenda", "security review", "shipping schedule", "term sheet",
    "workshop slides", "support ticket", "budget draft", "roadmap", "board deck", "audit notes",
)
SUBJECT_PATTERNS = ("{topic}", "Re: {topic}", "RE: {topic}", "Fwd: {topic}", "{topic} - follow up",
                    "Quick question on {topic}", "[ext] {topic}")
BODY_SENTENCES = (
    "Thanks for the quick turnaround.", "Can we move this to Thursday?",
    "Attached is the latest version.", "Let me know if anything is missing.",
    "I looped in the team for visibility.", "Numbers look good on our side.",
    "We still need sign-off from legal.", "Happy to jump on a call.",
    "Please see my comments inline.", "Following up on the thread below.",
)


@dataclass(frozen=True)
class Person:
    name: str
    address: str


@dataclass(frozen=True)
class Mailbox:
    account: str
    owner: Person
    layout: str  # "maildir", "mbox" or "eml"
    regular_messages: int
    crlf: bool = False


@dataclass
class Mail:
    """One message as it will be written; ``folder`` says where in the mailbox it is filed."""

    message_id: str
    date: str | None
    sender: str
    to: list[str] | None
    cc: list[str]
    subject: str
    body: str
    folder: str
    fold_to: bool = False
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    x_origin: str | None = None


MAILBOXES = (
    Mailbox("kunai-jim", Person("Jim Okada", "jim@kunaico.com"), "maildir", 100),
    Mailbox("kunai-sara", Person("Sara Lindqvist", "sara@kunaico.com"), "mbox", 94),
    Mailbox("kunai-ken", Person("Ken Mori", "ken@kunaico.com"), "eml", 108),
    Mailbox("kunai-ann", Person("Ann Becker", "ann@kunaico.com"), "eml", 86, crlf=True),
    Mailbox("kunai-raj", Person("Raj Patel", "raj@kunaico.com"), "eml", 90),
)
COLLEAGUES = (
    Person("Mia Tanaka", "mia.tanaka@kunaico.com"),
    Person("IT Helpdesk", "it-helpdesk@kunaico.com"),
    Person("Finance Team", "finance@kunaico.com"),
)


class SampleWriter:
    """Builds every mailbox from one seeded generator, so the output is byte-for-byte stable."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.message_counter = 0
        self.people_by_domain = {domain: self._people_of(domain, rank)
                                 for rank, domain in enumerate(OUTSIDE_DOMAINS, start=1)}
        self.domain_weights = [1.0 / rank ** 1.1 for rank in range(1, len(OUTSIDE_DOMAINS) + 1)]

    # ---- correspondents

    def _people_of(self, domain: str, rank: int) -> list[Person]:
        """Big domains have more people, like real partners with many contacts."""
        count = max(2, round(14 / rank ** 0.7))
        people: dict[str, Person] = {}
        while len(people) < count:
            first, last = self.random.choice(FIRST_NAMES), self.random.choice(LAST_NAMES)
            local = self.random.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}")).lower()
            people.setdefault(local, Person(f"{first} {last}", f"{local}@{domain}"))
        return list(people.values())

    def outside_person(self) -> Person:
        domain = self.random.choices(OUTSIDE_DOMAINS, weights=self.domain_weights)[0]
        return self.random.choice(self.people_by_domain[domain])

    def colleague(self, mailbox: Mailbox) -> Person:
        others = [box.owner for box in MAILBOXES if box is not mailbox] + list(COLLEAGUES)
        return self.random.choice(others)

    def written(self, person: Person) -> str:
        """How a mail client wrote the address: bare, named, "Last, First" quoted, odd case."""
        address = person.address
        if self.random.random() < 0.12:
            local, domain = address.split("@")
            address = f"{local.title()}@{domain.upper()}"
        style = self.random.random()
        if style < 0.35:
            return address
        if style < 0.75:
            return f"{person.name} <{address}>"
        first, _, last = person.name.partition(" ")
        return f'"{last}, {first}" <{address}>'

    # ---- messages

    def new_message_id(self, sender: str) -> str:
        self.message_counter += 1
        domain = sender.rsplit("@", 1)[-1].rstrip(">").lower()
        return f"<{self.random.getrandbits(48):012x}.{self.message_counter}@mail.{domain}>"

    def random_date(self) -> str:
        moment = PERIOD_START + timedelta(seconds=self.random.randrange(PERIOD_SECONDS))
        offset = timedelta(hours=self.random.choice(ZONE_OFFSETS_HOURS))
        return format_datetime(moment.astimezone(timezone(offset)))

    def subject(self) -> str:
        return self.random.choice(SUBJECT_PATTERNS).format(topic=self.random.choice(SUBJECT_TOPICS))

    def body(self) -> str:
        return " ".join(self.random.sample(BODY_SENTENCES, self.random.randint(1, 3)))

    def regular_mail(self, mailbox: Mailbox) -> Mail:
        """Inbound from outside, outbound to outside, or internal (sometimes with outsiders on Cc)."""
        kind = self.random.choices(("inbound", "outbound", "internal"), weights=(45, 40, 15))[0]
        if kind == "inbound":
            sender = self.written(self.outside_person())
            to = [self.written(mailbox.owner)]
            if self.random.random() < 0.15:
                to.append(self.written(self.colleague(mailbox)))
            folder = "inbox"
        elif kind == "outbound":
            sender = self.written(mailbox.owner)
            to = [self.written(self.outside_person()) for _ in range(self.random.choice((1, 1, 1, 2, 3)))]
            folder = "sent"
        else:
            sender = self.written(self.colleague(mailbox))
            to = [self.written(mailbox.owner)]
            folder = "inbox"
        cc: list[str] = []
        if self.random.random() < 0.22:
            cc = [self.written(self.outside_person() if self.random.random() < 0.7 else self.colleague(mailbox))
                  for _ in range(self.random.randint(1, 4))]
        return Mail(self.new_message_id(sender), self.random_date(), sender, to, cc,
                    self.subject(), self.body(), folder)

    def special_mail(self) -> dict[str, list[Mail]]:
        """The dirt, placed in fixed mailboxes so tests can name what they expect where."""
        jim, sara, ken, ann, raj = (box.owner for box in MAILBOXES)
        acme = self.people_by_domain["acme-logistics.com"]
        bluefin = self.people_by_domain["bluefin-capital.com"]
        special: dict[str, list[Mail]] = {box.account: [] for box in MAILBOXES}

        def mail(sender: str, to: list[str] | None, cc: list[str], subject: str, folder: str,
                 date: str | None = "random", body: str | None = None) -> Mail:
            return Mail(self.new_message_id(sender), self.random_date() if date == "random" else date,
                        sender, to, cc, subject, body or self.body(), folder)

        # One announcement to 60 outside recipients, folded over many lines (jim, sent).
        everyone = [person for domain in OUTSIDE_DOMAINS for person in self.people_by_domain[domain]]
        announcement = mail(f"{jim.name} <{jim.address}>", [person.address for person in everyone[:60]], [],
                            "Kunai product update - spring edition", "sent")
        announcement.fold_to = True
        special["kunai-jim"].append(announcement)

        # A folded To with display names containing commas (jim, inbox).
        folded = mail(self.written(acme[0]), [f'"Okada, Jim" <{jim.address}>', f'"Lindqvist, Sara" <{sara.address}>',
                                              f"{acme[1].name} <{acme[1].address.upper()}>", bluefin[0].address,
                                              '"Doe, Jane" <jane.doe@acme-logistics.com>', self.written(ken)],
                      [], "Re: shipping schedule for all hands", "inbox")
        folded.fold_to = True
        special["kunai-jim"].append(folded)

        # One mail seen by two mailboxes: jim wrote it to sara with an outsider on Cc.
        shared = mail(f"{jim.name} <{jim.address}>", [f"{sara.name} <{sara.address}>"],
                      [f"{bluefin[1].name} <{bluefin[1].address}>"], "Bluefin term sheet - internal view", "sent")
        special["kunai-jim"].append(shared)
        special["kunai-sara"].append(replace(shared, folder="inbox"))

        # A body paragraph starting with "From " (escaped as ">From " in the mbox).
        special["kunai-sara"].append(mail(self.written(bluefin[0]), [sara.address], [], "Re: pricing from next month", "inbox",
                                          body="Hi Sara,\n\nFrom next month the new rates apply.\n\nBest"))
        # No To at all: only Cc (sara) / only Bcc (ken, ann).
        special["kunai-sara"].append(mail(f"{sara.name} <{sara.address}>", None,
                                          [acme[2].address, bluefin[2].address], "Notes from the call", "sent"))
        no_to = mail(self.written(ken), None, [], "Reminder to self: renewals", "sent")
        no_to.extra_headers.append(("Bcc", acme[0].address))
        special["kunai-ken"].append(no_to)
        special["kunai-ann"].append(mail(self.written(self.outside_person()), None, [], "Newsletter", "inbox"))

        # Invalid addresses: no @, no dot in the domain, and an empty group.
        special["kunai-ken"].append(mail(f"{ken.name} <{ken.address}>", ["jane.doe", acme[0].address],
                                         ["bob@localhost", "  "], "Re: invoice 4471 bounced", "sent"))
        special["kunai-raj"].append(mail(self.written(self.outside_person()), ["undisclosed-recipients:;"],
                                         [], "Event invitation", "inbox"))

        # Unicode: a RFC 2047 display name, and a raw UTF-8 local part (RFC 6532).
        special["kunai-ann"].append(mail("=?utf-8?q?Zo=C3=AB_M=C3=BCller?= <zoe.mueller@helios-solar.de>",
                                         [ann.address], [], "Angebot Solarmodule", "inbox"))
        special["kunai-ann"].append(mail(f"{ann.name} <{ann.address}>", ["José Núñez <josé.núñez@andino.com.co>"],
                                         ["Ana Pérez <ana.perez@andino.com.co>"], "Propuesta comercial", "sent"))

        # One message filed twice in one mailbox, the copies differing only in X-Folder.
        original = mail(self.written(acme[0]), [ken.address], [acme[1].address], "Signed contract", "inbox")
        original.extra_headers.append(("X-Folder", "Inbox"))
        archived = replace(original, folder="archive", extra_headers=[("X-Folder", "Archive/2025")])
        special["kunai-ken"] += [original, archived]

        # Dates: unparseable, without zone, missing.
        special["kunai-raj"].append(mail(self.written(self.outside_person()), [raj.address], [], "Lunch?", "inbox",
                                         date="sometime next Tuesday"))
        special["kunai-raj"].append(mail(f"{raj.name} <{raj.address}>", [bluefin[0].address], [], "Re: roadmap call time",
                                         "sent", date="Tue, 04 Mar 2025 09:15:00 -0000"))
        special["kunai-ann"].append(mail(self.written(self.outside_person()), [ann.address], [], "No date on this one",
                                         "inbox", date=None))

        # An X-Origin in odd case with spaces around it.
        odd = mail(self.written(self.outside_person()), [ann.address], [], "Re: site visit photos", "inbox")
        odd.x_origin = "  Kunai-Ann "
        special["kunai-ann"].append(odd)
        return special


def render(mail: Mail, account: str, line_end: str) -> bytes:
    """The raw RFC 5322 text, written by hand so folding and raw UTF-8 stay exactly as intended."""
    headers = [("Message-ID", mail.message_id)]
    if mail.date is not None:
        headers.append(("Date", mail.date))
    headers.append(("From", mail.sender))
    if mail.to is not None:
        headers.append(("To", fold(mail.to, line_end) if mail.fold_to else ", ".join(mail.to)))
    if mail.cc:
        headers.append(("Cc", ", ".join(mail.cc)))
    headers += [("Subject", mail.subject), ("MIME-Version", "1.0"),
                ("Content-Type", "text/plain; charset=utf-8"), ("Content-Transfer-Encoding", "8bit"),
                ("X-Origin", mail.x_origin if mail.x_origin is not None else account)]
    headers += mail.extra_headers
    text = "".join(f"{name}: {value}{line_end}" for name, value in headers)
    text += line_end + mail.body.replace("\n", line_end) + line_end
    return text.encode("utf-8")


def fold(addresses: Sequence[str], line_end: str, width: int = 72) -> str:
    """Fold an address list over several lines, as mail clients do for long headers."""
    lines, current = [], ""
    for address in addresses:
        piece = address if not current else f"{current}, {address}"
        if current and len(piece) > width:
            lines.append(current + ",")
            current = address
        else:
            current = piece
    lines.append(current)
    return (line_end + "\t").join(lines)


def write_maildir(directory: Path, mails: list[tuple[Mail, bytes]]) -> None:
    """Inbox mail in the top maildir (most read, in cur/; a few unread, in new/); sent in .Sent/."""
    for folder in (directory, directory / ".Sent"):
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "tmp" / ".gitkeep").write_bytes(b"")
    for number, (mail, raw) in enumerate(mails, start=1):
        folder = directory / ".Sent" if mail.folder == "sent" else directory
        unread = mail.folder != "sent" and number % 9 == 0
        name = f"{1704067200 + number * 7919}.M{number}P4242.kunai-mail"
        target = folder / "new" / name if unread else folder / "cur" / f"{name}:2,S"
        target.write_bytes(raw)
    for folder in (directory, directory / ".Sent"):  # git keeps no empty folder
        if not any((folder / "new").iterdir()):
            (folder / "new" / ".gitkeep").write_bytes(b"")


def write_mbox(path: Path, mails: list[tuple[Mail, bytes]]) -> None:
    """mboxrd: a From_ line per message, body lines starting with (>*)From  get one more '>'."""
    with path.open("wb") as handle:
        for mail, raw in mails:
            handle.write(f"From {mail_sender_address(mail)} Mon Jan  1 00:00:00 2024\n".encode())
            for line in raw.splitlines(keepends=True):
                handle.write(b">" + line if line.lstrip(b">").startswith(b"From ") else line)
            handle.write(b"\n")


def mail_sender_address(mail: Mail) -> str:
    return mail.sender.rsplit("<", 1)[-1].rstrip(">").strip() or "MAILER-DAEMON"


def write_eml_folders(directory: Path, mails: list[tuple[Mail, bytes]]) -> None:
    for number, (mail, raw) in enumerate(mails, start=1):
        folder = directory / mail.folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number:04d}.eml").write_bytes(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    output: Path = parser.parse_args(argv).output
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    writer = SampleWriter(SEED)
    special = writer.special_mail()
    for mailbox in MAILBOXES:
        mails = [writer.regular_mail(mailbox) for _ in range(mailbox.regular_messages)]
        mails += special[mailbox.account]
        writer.random.shuffle(mails)
        line_end = "\r\n" if mailbox.crlf else "\n"
        rendered = [(mail, render(mail, mailbox.account, line_end)) for mail in mails]
        if mailbox.layout == "maildir":
            write_maildir(output / mailbox.account, rendered)
        elif mailbox.layout == "mbox":
            write_mbox(output / f"{mailbox.account}.mbox", rendered)
        else:
            write_eml_folders(output / mailbox.account, rendered)
        print(f"{mailbox.account}: {len(mails)} messages ({mailbox.layout})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
