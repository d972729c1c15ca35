"""The documentation holds together: every relative link in README.md and docs/ resolves.

A link or image (`[text](path)`, `![alt](path)`, with or without `#anchor`) must name an
existing file, and an anchor must name a heading of that file, slugged as GitHub does. The
README stays a front page (at most 340 lines) and keeps the two quick-start commands that
the Makefile and CI name.
"""

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 340

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files():
    return [README, *sorted((ROOT / "docs").rglob("*.md"))]


def prose_lines(text):
    """The lines outside fenced and indented code blocks, inline code blanked out."""
    lines, fence, previous_blank = [], None, True
    for line in text.splitlines():
        opening = FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
            lines.append("")
            continue
        if opening:
            fence = opening.group(1)
            lines.append("")
            continue
        if previous_blank and line.startswith("    ") and line.strip():
            lines.append("")  # an indented code block (continues while indented)
            continue
        previous_blank = not line.strip() or (previous_blank and line.startswith("    "))
        lines.append(INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line))
    return lines


def github_slug(heading):
    """GitHub's anchor for a heading: its rendered text, lower-cased, punctuation dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = text.strip().lower()
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in " -_" or category[0] in "LNM":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


def anchors(path):
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 ... for repeats."""
    seen, result = {}, set()
    fence = None
    for line in path.read_text(encoding="utf-8").splitlines():
        opening = FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0]:
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(path):
    """(line number, target) of every link, image and reference that is not a URL."""
    found = []
    for number, line in enumerate(prose_lines(path.read_text(encoding="utf-8")), start=1):
        targets = [m.group(1) for m in LINK.finditer(line)]
        reference = REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        found += [(number, t) for t in targets if not SCHEME.match(t) and not t.startswith("//")]
    return found


def broken_links(path, root=ROOT):
    """A line for each link of `path` whose file or heading does not exist."""
    problems = []
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{number}: {target}"
        if not destination.exists():
            problems.append(f"{where}: no file {destination}")
        elif anchor:
            if destination.is_dir() or destination.suffix.lower() != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(anchor).lower() not in anchors(destination):
                problems.append(f"{where}: no heading '#{anchor}' in {file_part or path.name}")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


def test_docs_exist_and_are_linked_from_the_readme():
    docs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert {"docs/architecture.md", "docs/README.md"} <= docs
    linked = {(README.parent / t.partition("#")[0]).resolve() for _, t in relative_links(README)}
    assert (ROOT / "docs" / "README.md").resolve() in linked
    assert (ROOT / "docs" / "architecture.md").resolve() in linked
    index = ROOT / "docs" / "README.md"
    from_index = {(index.parent / t.partition("#")[0]).resolve() for _, t in relative_links(index)}
    unlisted = sorted(p for p in docs if (ROOT / p).resolve() not in from_index | {index.resolve()})
    assert unlisted == [], "pages missing from docs/README.md"


def test_readme_is_a_front_page_with_the_quick_start():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make train" in text
    assert "make test" in text


def test_the_checker_finds_broken_links(tmp_path):
    """The checks above would fail: a missing file, a missing heading, a missing image."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Two words `code`, here\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Top\n\n"
        "[ok](docs/a.md) [ok](docs/a.md#a-page) [ok](docs/a.md#two-words-code-here) [ok](#top)\n"
        "[web](https://example.com/missing.md) `[code](missing.md)`\n\n"
        "```bash\n[fenced](missing.md)\n```\n\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#nope) ![image](docs/none.png) [self](#nope)\n"
    )
    problems = broken_links(page, root=tmp_path)
    assert [p.split(": ")[1] for p in problems] == [
        "docs/b.md",
        "docs/a.md#nope",
        "docs/none.png",
        "#nope",
    ]


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Quick start", "quick-start"),
        ("Trainer options (`trainer.*`)", "trainer-options-trainer"),
        (
            "An airbench-class recipe (`experiment=cifar10_speed`, `experiment=fmnist_speed`)",
            "an-airbench-class-recipe-experimentcifar10_speed-experimentfmnist_speed",
        ),
        (
            "Regularizers (`regularizer=[...]`, several at once)",
            "regularizers-regularizer-several-at-once",
        ),
        (
            "Sweeps, hyper-parameter search and multi-GPU training",
            "sweeps-hyper-parameter-search-and-multi-gpu-training",
        ),
        ("export.json", "exportjson"),
    ],
)
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug
