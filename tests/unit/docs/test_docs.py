"""The README and docs/ as a reader meets them: a short front door that links every page, links
that lead somewhere, and a settings reference that names every setting the services read."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

import services

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [
    README,
    *sorted(DOCS.glob("*.md")),
    ROOT / "deploy/k8s/README.md",
    ROOT / "bench/README.md",
]
# The README is the front door: what calltrail is, the two commands, the setup. Reference
# lives in docs/, so it stays about this long.
README_MAX_LINES = 200

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without code: a link inside a code block or span is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        slug = anchor(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(page: Path) -> list[str]:
    return LINK.findall(prose(page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check here
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{target}: no such heading in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readme_is_a_front_door_that_links_every_page() -> None:
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move reference to docs/"
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README)}
    unlinked = [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert not unlinked, f"docs/ pages the README does not link: {unlinked}"


def test_every_docs_page_says_who_it_is_for() -> None:
    for page in DOCS.glob("*.md"):
        first = page.read_text().split("\n\n")[1]
        assert first.startswith("For "), f"{page.name} should start by saying who it is for"


def settings_fields() -> dict[str, str]:
    """Every setting the services read from the environment, and the class that reads it."""
    found: dict[str, str] = {}
    for module in pkgutil.walk_packages(services.__path__, "services."):
        if ".devtools" in module.name or ".migrations" in module.name:
            continue
        loaded = importlib.import_module(module.name)
        for name, cls in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(cls, BaseSettings) and cls.__module__ == loaded.__name__:
                for field in cls.model_fields:
                    found.setdefault(field.upper(), f"{cls.__module__}.{name}")
    return found


def documented_settings() -> set[str]:
    text = (DOCS / "operations.md").read_text()
    section = text[text.index("## Settings") :]
    section = section[: section.index("\n## ", 1)]
    names: set[str] = set()
    for row in re.findall(r"^\| (.+?) \|", section, re.MULTILINE):
        names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", row))
    return names


def test_the_settings_reference_names_every_setting_and_nothing_else() -> None:
    fields = settings_fields()
    documented = documented_settings()
    assert fields, "no settings classes found"
    undocumented = sorted(f"{name} ({fields[name]})" for name in fields if name not in documented)
    assert not undocumented, f"settings missing from docs/operations.md: {undocumented}"
    unknown = sorted(documented - fields.keys())
    assert not unknown, f"docs/operations.md documents settings nothing reads: {unknown}"
