"""The committed docs hold together: every relative link resolves (file and #heading), README.md
stays a front door (at most 150 lines), and no doc carries an absolute path from a machine."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 150

# Absolute paths that are not from a machine: documented defaults and recorded commands.
ALLOWED_ABSOLUTE = {
    "/tmp/fmscale-gpus": "the documented default of $FMSCALE_GPU_LOCK_DIR (docs/cluster.md)",
    "/tmp/exp": "a scratch --out in a recorded probe command (docs/decisions/)",
}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _linked_docs() -> list[str]:
    files = [ROOT / "README.md", ROOT / "benchmarks/README.md", *sorted(ROOT.glob("docs/**/*.md"))]
    return [_rel(f) for f in files]


def _committed_docs() -> list[str]:
    return [*_linked_docs(), "CHANGELOG.md"]


FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code spans (links there are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation stripped except
    ``-``, ``_`` and spaces, spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](target) -> text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, duplicates numbered as GitHub does (-1, -2)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in HEADING.finditer(FENCE.sub("", path.read_text())):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> list[str]:
    prose = _prose(text)
    return [m.group(1) for m in LINK.finditer(prose)] + REFERENCE.findall(prose)


def broken_links(doc: str) -> list[str]:
    """Each relative link of ``doc`` whose file, or whose #heading, does not exist."""
    source = ROOT / doc
    problems = []
    for target in links(source.read_text()):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (source.parent / file_part).resolve() if file_part else source
        try:
            rel = _rel(dest)
        except ValueError:
            problems.append(f"{target}: outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{target}: no file {rel}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {rel}")
    return problems


@pytest.mark.parametrize("doc", _linked_docs())
def test_every_relative_link_resolves(doc):
    problems = broken_links(doc)
    assert not problems, f"{doc}: broken links:\n" + "\n".join(problems)


def test_the_link_check_sees_links_and_headings(tmp_path, monkeypatch):
    """The checker itself: it finds a broken file, a broken anchor, and passes good ones."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/a.md").write_text(
        "# Title\n\n## Training settings (`train:`)\n\n```\n[x](nowhere.md)\n```\n"
        "[ok](#training-settings-train) [ok](../README.md#read-me) `[code](gone.md)`\n"
        "[bad file](b.md) [bad anchor](../README.md#nope) [web](https://example.org/x)\n"
        "[multi\nline](a.md#title)\n"
    )
    (tmp_path / "README.md").write_text("# Read me\n")
    assert broken_links("docs/a.md") == [
        "b.md: no file docs/b.md",
        "../README.md#nope: no heading #nope in README.md",
    ]


def test_slug_follows_github():
    assert slug("Training settings (`train:`)") == "training-settings-train"
    assert slug("Verified here, and not") == "verified-here-and-not"
    assert slug("mamba-ssm by hand (pip)") == "mamba-ssm-by-hand-pip"
    assert slug("`--json` fields") == "--json-fields"
    assert slug("Adding an architecture or a metric") == "adding-an-architecture-or-a-metric"


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to docs/"
    )


ABSOLUTE = re.compile(r"(?<![\w.~$/-])/(?:work|tmp|home|Users)/[^\s`'\")\]>,;]*")


@pytest.mark.parametrize(
    "doc",
    _committed_docs(),
)
def test_no_absolute_machine_paths(doc):
    found = []
    for number, line in enumerate((ROOT / doc).read_text().splitlines(), 1):
        for match in ABSOLUTE.finditer(line):
            path = match.group(0).rstrip(".")
            if path not in ALLOWED_ABSOLUTE:
                found.append(f"{doc}:{number}: {path}")
    assert not found, "absolute paths from a machine:\n" + "\n".join(found)
