"""The documentation's links resolve and the README stays short (#20).

Every relative link in ``README.md``, ``docs/*.md`` and
``recipes/**/*.md`` must name an existing file, and a ``#anchor`` must
name a heading of that file, slugged as GitHub does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import MARKDOWN_FENCE, ROOT, doc_files

README_MAX_LINES = 260

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_MD_LINK_TEXT = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def prose_lines(text: str) -> list[str]:
    """The lines of ``text`` outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if MARKDOWN_FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text.

    >>> slug("Data preparation (`data_prep.py`)")
    'data-preparation-data_preppy'
    >>> slug("Today's code: `augment`, two seeds")
    'todays-code-augment-two-seeds'
    """
    text = _MD_LINK_TEXT.sub(r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeats get ``-1``, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(path: Path) -> list[str]:
    """The relative links of ``path`` that name no file or no heading."""
    bad = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        line = _CODE_SPAN.sub("", line)
        for target in _LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # http:, https:, mailto:
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                bad.append(f"{target}: no such file")
                continue
            if dest.is_dir():
                dest = dest / "README.md"
                if anchor and not dest.is_file():
                    bad.append(f"{target}: a folder without README.md")
                    continue
            if anchor and anchor not in anchors(dest):
                bad.append(f"{target}: no heading #{anchor}")
    return bad


@pytest.mark.parametrize(
    "path", doc_files(), ids=lambda p: str(p.relative_to(ROOT))
)
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_link_checker_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A title\n\n## Sub `part`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n"
        "[ok](other.md) [ok](other.md#sub-part) [ok](#page)\n"
        "[web](https://example.com/x.md) `[code](missing.md)`\n"
        "```\n[fenced](missing.md)\n```\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [self](#nope)\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nope: no heading #nope",
        "#nope: no heading #nope",
    ]


def test_readme_is_short_and_names_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make demo" in text
    assert "make test" in text


def test_readme_links_to_troubleshooting() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert any(
        _HEADING.match(line) and "Troubleshooting" in line
        for line in prose_lines(text)
    )
    assert "(docs/troubleshooting.md)" in text


def test_slug_is_githubs() -> None:
    assert slug("Data preparation (`data_prep.py`)") == (
        "data-preparation-data_preppy"
    )
    assert slug("Targets of issue #12") == "targets-of-issue-12"
    assert slug("Paper-width torch, first run") == "paper-width-torch-first-run"
