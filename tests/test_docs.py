"""The documentation stays navigable and complete: links resolve, every plugin option is listed."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from detector.observability.config import ENV_NAMES, ENV_PREFIX, ObservabilityConfig

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
CONFIGURATION = ROOT / "docs" / "configuration.md"

MARKDOWN = MarkdownIt("commonmark").enable("table")


def _tokens(page: Path) -> list[Token]:
    """Block tokens with their inline children flattened in, in document order."""
    flat: list[Token] = []
    for token in MARKDOWN.parse(page.read_text(encoding="utf-8")):
        flat.append(token)
        flat.extend(token.children or ())
    return flat


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives `page`'s headings (repeated ones get -1, -2, …)."""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    blocks = MARKDOWN.parse(page.read_text(encoding="utf-8"))
    for opening, inline in pairwise(blocks):
        if opening.type != "heading_open":
            continue
        text = "".join(child.content for child in inline.children or () if child.content)
        slug = _slug(text)
        found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return found


def relative_links(page: Path) -> list[str]:
    """Every link target in `page` that is not an absolute URL (code spans and blocks aside)."""
    targets = [
        str(token.attrs.get("href") or token.attrs.get("src") or "")
        for token in _tokens(page)
        if token.type in ("link_open", "image")
    ]
    return [target for target in targets if not urlsplit(target).scheme]


def broken_links(page: Path) -> list[str]:
    """What is wrong with each relative link of `page` (empty when every one resolves)."""
    broken: list[str] = []
    for target in relative_links(page):
        parts = urlsplit(target)
        if target.startswith("/"):
            broken.append(f"{target}: root-relative; write it relative to {page.name}")
            continue
        path = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not path.exists():
            broken.append(f"{target}: {path.name} does not exist")
        elif parts.fragment and path.suffix == ".md" and parts.fragment not in anchors(path):
            broken.append(f"{target}: no heading with anchor #{parts.fragment} in {path.name}")
    return broken


def test_the_pages_are_found() -> None:
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"README.md", "docs/README.md", "docs/configuration.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_to_a_file_and_anchor(page: Path) -> None:
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


def test_the_link_checker_reports_missing_files_and_anchors_only(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text(
        "# Other page\n\n## A `code` heading: yes\n\n## Other page\n"
    )
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-code-heading-yes) [again](other.md#other-page-1) [self](#title)\n"
        "[gone](missing.md) [bad](other.md#nope) [root](/other.md)\n\n# Title\n\n"
        "```\n[not a link](nowhere.md)\n```\n\n[web](https://example.com/x.md) `[code](x.md)`\n"
    )
    assert broken_links(page) == [
        "missing.md: missing.md does not exist",
        "other.md#nope: no heading with anchor #nope in other.md",
        "/other.md: root-relative; write it relative to page.md",
    ]


def test_every_observability_plugin_option_is_in_the_configuration_page() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+|OBSERVABILITY_[A-Z_]+)`", text))
    for option in dataclasses.fields(ObservabilityConfig):
        if option.name == "extra":
            continue
        assert option.name in documented, f"option `{option.name}` is not in {CONFIGURATION.name}"
        if option.name == "redact":  # a callback: no variable
            continue
        variable = ENV_NAMES.get(option.name, ENV_PREFIX + option.name.upper())
        assert variable in documented, f"{variable} is not in {CONFIGURATION.name}"
