"""The docs hold together: every section the code or the docs cite exists, every relative link in
README.md and docs/ reaches its file and heading, and the README stays a front door whose test
command is the one CI runs.

A citation has one form everywhere, the file from the project's root and the heading in double
quotes: README.md, "Start" or docs/performance.md, "Training speed" (inside a Python string the
quotes may be escaped). Any other mention of the README in the code is reported, so a citation
cannot slip into a form this test does not read.
"""

import os
import re
from pathlib import Path

from helpers import ROOT

CITATION = re.compile(r'(README\.md|docs/[\w./-]+\.md), \\?"([^"\\\n]+)\\?"')
# "README" anywhere in the code that does not open a citation.
STRAY_README = re.compile(r'README(?!\.md, \\?")')
# pyproject.toml's own field, which is no citation.
NOT_A_CITATION = {'readme = "README.md"'}
# [text](target) and ![alt](target), with an optional "title".
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".sh", ".js", ".ini", ".cfg", ".yml", ".yaml"}
# Folders that hold no project source: run stores, build output, environments.
SKIPPED_DIRS = {".git", "runs", "test-output", "build", "dist", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache",
                ".ruff_cache"}
THIS_FILE = Path(__file__).resolve()
TEST_COMMAND = "./setup.sh --test && python3 -m pytest"
README_MOST_LINES = 200


def project_files(root: Path) -> list[Path]:
    """The project's text files: source, tests, docs, settings, and .ci/run."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            if path.suffix in TEXT_SUFFIXES or path.relative_to(root).as_posix() == ".ci/run":
                found.append(path)
    return sorted(p for p in found if p.resolve() != THIS_FILE)


def without_code_blocks(markdown: str) -> list[str]:
    """The markdown's lines outside fenced code blocks (a `# comment` in a bash block is no heading)."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def headings(markdown: str) -> list[str]:
    return [re.sub(r"\s+#+\s*$", "", line.lstrip("#").strip()) for line in without_code_blocks(markdown)
            if re.match(r"#{1,6}\s", line)]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in headings(markdown):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def citation_faults(root: Path) -> list[str]:
    """Citations whose file or heading does not exist, and mentions of the README that are no citation."""
    faults = []
    for path in project_files(root):
        where = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for match in CITATION.finditer(line):
                cited, heading = root / match[1], match[2]
                if not cited.is_file():
                    faults.append(f"{where}:{number}: cites {match[1]}, which does not exist")
                elif heading not in headings(cited.read_text()):
                    faults.append(f"{where}:{number}: cites {match[1]}, \"{heading}\": no such heading")
            if path.suffix != ".md" and line.strip() not in NOT_A_CITATION and STRAY_README.search(line):
                faults.append(f"{where}:{number}: mentions the README without citing a section as README.md, \"Heading\"")
    return faults


def link_faults(root: Path) -> list[str]:
    """Relative links in README.md and docs/*.md whose file or anchor does not exist."""
    faults = []
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        where = page.relative_to(root).as_posix()
        for line in without_code_blocks(page.read_text()):
            for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                path, _, anchor = target.partition("#")
                linked = (page.parent / path).resolve() if path else page
                if not linked.exists():
                    faults.append(f"{where}: links to {target}: no such file")
                elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
                    faults.append(f"{where}: links to {target}: no such heading in {linked.name}")
    return faults


def test_every_cited_section_exists():
    assert not citation_faults(ROOT), "\n".join(citation_faults(ROOT))


def test_the_code_cites_the_docs_by_section():
    cited = {(path.relative_to(ROOT).as_posix(), match[1]) for path in project_files(ROOT) if path.suffix == ".py"
             for match in CITATION.finditer(path.read_text())}
    assert len({file for _, file in cited}) >= 5, "the citations are found where the code makes them"


def test_every_relative_link_in_the_docs_reaches_its_file_and_heading():
    assert not link_faults(ROOT), "\n".join(link_faults(ROOT))


def test_a_missing_heading_file_anchor_or_loose_mention_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## The seed's table, reproduced\n\n```bash\n# Not a heading\n```\n")
    (tmp_path / "README.md").write_text(
        "# Front door\n\n[fine](docs/guide.md#the-seeds-table-reproduced) [fine](#front-door) [web](https://example.org)\n"
        "[gone](docs/gone.md) [no anchor](docs/guide.md#not-a-heading) ![missing picture](docs/missing.png)\n")
    (tmp_path / "module.py").write_text(
        '# good: docs/guide.md, "The seed\'s table, reproduced"\n'
        '# the heading is gone: docs/guide.md, "Not a heading"\n'
        'print("escaped quotes in a string: docs/guide.md, \\"Nothing\\"")\n'
        '# no such file: docs/gone.md, "Guide"\n'
        "# a loose mention: see the README\n")
    assert citation_faults(tmp_path) == [
        'module.py:2: cites docs/guide.md, "Not a heading": no such heading',
        'module.py:3: cites docs/guide.md, "Nothing": no such heading',
        "module.py:4: cites docs/gone.md, which does not exist",
        'module.py:5: mentions the README without citing a section as README.md, "Heading"',
    ]
    assert link_faults(tmp_path) == [
        "README.md: links to docs/gone.md: no such file",
        "README.md: links to docs/guide.md#not-a-heading: no such heading in guide.md",
        "README.md: links to docs/missing.png: no such file",
    ]


def test_anchors_are_githubs():
    assert anchors("# The seed's table, reproduced\n## `predict`\n## Are the pictures fair?\n## Notes\n## Notes\n") == {
        "the-seeds-table-reproduced", "predict", "are-the-pictures-fair", "notes", "notes-1"}


def test_the_readme_is_a_front_door_and_ci_runs_its_test_command():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MOST_LINES
    commands = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert "./setup.sh && python3 -m streamlit run streamlit_app.py\n" in commands
    assert f"{TEST_COMMAND}\n" in commands
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == [TEST_COMMAND]
