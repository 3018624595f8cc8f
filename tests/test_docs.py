"""The README stays a five-minute read and every link in it and in docs/ leads somewhere (issue 21).

The README starts with the two commands that work on a fresh machine and is at most 250 lines; the
rest lives in docs/, one topic per page. Every relative link in README.md and docs/*.md names a file
that exists and, with a `#anchor`, a heading of that file (GitHub's anchor rule)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 250
FIRST_COMMANDS = ("bash scripts/demo.sh", "bash scripts/test.sh")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a link or a `#` inside a code block is code)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = anchor(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    problems = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, fragment = target.partition("#")
            destination = (page.parent / path_part).resolve() if path_part else page
            if not destination.exists():
                problems.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
                problems.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    return problems


def test_the_readme_is_a_five_minute_read():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def test_the_readme_starts_with_the_two_commands():
    head = [line.split("#")[0].strip() for line in README.read_text(encoding="utf-8").splitlines()[:10]]
    for command in FIRST_COMMANDS:
        assert command in head, f"{command!r} is not among the README's first 10 lines"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    assert broken_links(page) == []


def test_the_readme_links_every_docs_page():
    linked = {Path(target.partition("#")[0]).name for target in LINK.findall(README.read_text(encoding="utf-8"))
              if target.startswith("docs/")}
    pages = {page.name for page in (ROOT / "docs").glob("*.md")}
    assert pages - linked == set(), "README's Documentation section must link every docs/ page"


def test_the_checker_catches_a_broken_link_and_a_missing_heading(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "A.md").write_text("# Title\n## The role Airflow's user needs\n[ok](#the-role-airflows-user-needs)\n"
                                   "[bad](B.md) [bad anchor](#nope)\n```\n[in code](C.md)\n```\n")
    assert broken_links(tmp_path / "A.md") == ["A.md: B.md (no such file)", "A.md: #nope (no such heading)"]
