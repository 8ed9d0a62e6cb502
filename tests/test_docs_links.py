"""The README is a front door (short, set-up commands first) and every relative link in it and docs/ resolves."""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200
FIRST_SCREEN = 45
"""Lines of the README a reader sees without scrolling far: the set-up commands must be inside them."""

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
_HTML = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.I)
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans (a link shown as code is not a link)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    """Every link target of a markdown text: inline links and images, reference definitions, HTML src/href."""
    prose = _prose(text)
    return [m.group(1) for pattern in (_INLINE, _REFERENCE, _HTML) for m in pattern.finditer(prose)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[`*_~]", lambda m: "_" if m.group(0) == "_" else "", text).lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for m in _HEADING.finditer(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """The relative links of ``page`` whose file (or heading anchor, for a markdown file) does not exist."""
    bad = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...: not checked (no network)
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not resolved.exists():
            bad.append(f"{target} (no such file)")
        elif not resolved.is_relative_to(root):
            bad.append(f"{target} (outside the repository)")
        elif fragment and resolved.suffix == ".md" and fragment.lower() not in anchors(resolved):
            bad.append(f"{target} (no heading with anchor #{fragment})")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_link_checker_finds_broken_links(tmp_path):
    (tmp_path / "there.md").write_text("# A heading: with `code`\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    (tmp_path / "pic.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) ![ok](pic.png) [ok](there.md#a-heading-with-code) [ok](there.md#twice-1)\n"
                    "[ok](https://example.org/x) `[code](missing.md)`\n\n```\n[fenced](missing.md)\n```\n"
                    "[gone](missing.md) ![gone](missing.png) [bad anchor](there.md#nowhere) [self](#nothing)\n"
                    "[ref]: also-missing.md\n<img src=\"gone.jpg\">\n", encoding="utf-8")
    (tmp_path.parent / "outside.md").write_text("# Outside\n", encoding="utf-8")
    page.write_text(page.read_text(encoding="utf-8") + "[outside](../outside.md)\n", encoding="utf-8")
    assert broken_links(page, root=tmp_path) == [
        "missing.md (no such file)", "missing.png (no such file)", "there.md#nowhere (no heading with anchor #nowhere)",
        "#nothing (no heading with anchor #nothing)", "../outside.md (outside the repository)",
        "also-missing.md (no such file)", "gone.jpg (no such file)"]


def test_every_docs_page_is_listed_in_the_index():
    index = ROOT / "docs" / "index.md"
    listed = {(index.parent / unquote(t.partition("#")[0])).resolve() for t in links(index.read_text(encoding="utf-8"))}
    pages = {p.resolve() for p in PAGES if p.name not in ("index.md", "README.md")}
    assert sorted(p.name for p in pages - listed) == []


def test_readme_is_a_short_front_door_with_the_ci_commands_first():
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(readme) <= README_MAX_LINES
    first_screen = "\n".join(readme[:FIRST_SCREEN])
    commands = re.findall(r"^```bash\n(.*?)\n```", first_screen, re.M | re.S)
    run_app = next(c for c in commands if "pip install . " in c)
    run_tests = next(c for c in commands if "[test]" in c)
    assert run_app.endswith("cxrviewer resources/samples")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # the test command is the CI script's, step for step: the torch pin, the editable install with the test extra, pytest
    torch_pin = re.search(r"pip install -q (torch==\S+ torchvision==\S+)", ci).group(1)
    assert f"pip install {torch_pin}" in run_tests and f"pip install {torch_pin}" in run_app
    assert "pip install -e '.[test]'" in run_tests and "pip install -q -e '.[test]'" in ci
    assert run_tests.endswith("QT_QPA_PLATFORM=offscreen python -m pytest")
    assert "QT_QPA_PLATFORM=offscreen" in ci and "python -m pytest" in ci
