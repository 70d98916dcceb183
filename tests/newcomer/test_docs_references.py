"""The docs point only at things a fresh clone has, and carry no notes meant for the team.

A newcomer followed references to ``research/attractor.md``, "the style
guide" and "the shared architecture brief", none of which is in the
repository, and read "(lead)" and "other engineer" in tables. These tests
read README.md, docs/*.md and the examples' READMEs: every repository path
in backticks and every relative link must exist, and none of those phrases
may appear.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").rglob("README.md")])
TOP = {p.name for p in REPO.iterdir() if not p.name.startswith(".")}
MISSING_SOURCES = {"research", "shared"}

CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.S)
INTERNAL = ["(lead)", "other engineer", "style guide", "style.md", "architecture brief", "the brief", "research/",
            "attractor.md"]


def repo_path(text: str, here: Path = REPO) -> Path | None:
    """Where ``text`` points if it reads as a path in this repository (``kernel/world/cbor.py``,
    ``examples/``, or one relative to ``here``, the document's directory), else None. Paths into
    the team's private notes (``research/``, ``shared/``) count as paths, so they are caught."""
    if any(c in text for c in " <>{}@:=$~\"'") or text.startswith(("/", ".", "-")) or "/" not in text:
        return None
    first = text.split("/", 1)[0]
    if first in TOP or first in MISSING_SOURCES:
        return REPO / text
    if here != REPO and (here / first).exists():
        return here / text
    return None


def references(doc: Path) -> list[tuple[str, Path]]:
    """(as written, resolved path) for the repository paths and relative links of one document."""
    text = doc.read_text()
    prose = FENCE.sub("", text)  # commands and output in code blocks name the reader's files, not ours
    found = []
    for match in CODE.finditer(prose):
        written = match.group(1).split("::")[0]
        path = repo_path(written, doc.parent)
        if path is not None:
            found.append((written, path))
    for match in LINK.finditer(text):
        target = match.group(1)
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        found.append((target, (doc.parent / target.split("#")[0]).resolve()))
    return found


def _exists(path: Path) -> bool:
    if "*" in str(path):
        return any(Path(path.anchor).glob(str(path.relative_to(path.anchor))))
    return path.exists()


def test_every_path_and_link_in_the_docs_exists():
    """Each backticked repository path and each relative link in README.md, docs/ and examples/ names a real file."""
    missing = [f"{doc.relative_to(REPO)}: {written}" for doc in DOCS for written, path in references(doc)
               if not _exists(path)]
    assert missing == []


def test_the_checker_sees_paths_and_links():
    """The reference parser finds the paths it must check and leaves world names and reader paths alone."""
    assert repo_path("kernel/world/cbor.py") == REPO / "kernel" / "world" / "cbor.py"
    assert repo_path("examples/") and repo_path("research/attractor.md") and repo_path("tests/agents/test_*.py")
    assert repo_path("wasm/aos_wf.h", REPO / "examples") == REPO / "examples" / "wasm" / "aos_wf.h"
    for not_a_path in ("demo/counter@1", "sys/timer.set@1", "/tmp/aos-tutorial/poll", "~/src", "unix:DATA/x",
                       "host.fs", "agent/Command@1", "notes/<name>.txt", "DATA/admin.token", "sub/a.py"):
        assert repo_path(not_a_path) is None, not_a_path
    assert sum(len(references(doc)) for doc in DOCS) > 100


def test_no_doc_carries_internal_notes_or_missing_sources():
    """No document mentions the team's private notes: (lead), other engineer, the style guide, the brief, research/."""
    hits = [f"{doc.relative_to(REPO)}:{n}: {line.strip()}" for doc in DOCS
            for n, line in enumerate(doc.read_text().splitlines(), 1)
            for phrase in INTERNAL if phrase in line.lower()]
    assert hits == []
