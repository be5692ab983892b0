"""The documentation is true to the repository it describes.

* every relative link in README.md, CONTRIBUTING.md and docs/*.md reaches a file that
  exists, and every ``#anchor`` into a Markdown file a heading in it (GitHub's slugs);
* docs/contracts.md is exactly what :func:`joinedup.contract_docs.render` makes from the
  contracts, the catalogue, the ledger and the marts, so a contract cannot change
  without its documentation;
* the README stays an entry point (short, pointing at the contracts and CONTRIBUTING);
* nothing tracked refers to the external contracts file the project was built from:
  the project carries its own (docs/contracts.md).
"""

from __future__ import annotations

import difflib
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from joinedup import contract_docs
from joinedup.catalogue import REPO_ROOT

README = REPO_ROOT / "README.md"
CONTRIBUTING = REPO_ROOT / "CONTRIBUTING.md"
CONTRACTS_DOC = REPO_ROOT / "docs" / "contracts.md"
README_MAX_LINES = 160
# The reference the project was built from, kept outside the repository; spelt in two
# parts so this file does not name it.
OLD_CONTRACTS = "CONTRACTS" + ".md"
# Tracked files allowed to name it (a page explaining the rename); none today.
MAY_NAME_OLD_CONTRACTS: frozenset[str] = frozenset()


def documents() -> list[Path]:
    return [README, CONTRIBUTING, *sorted((REPO_ROOT / "docs").glob("*.md"))]


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[ \t]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\))?[^()\s<>]*)>?")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


def _without_code(text: str) -> str:
    """The text with fenced blocks and code spans blanked (line numbers kept)."""
    text = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return "\n".join(_CODE_SPAN.sub("", line) for line in text.split("\n"))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: Counter[str] = Counter()
    found = set(_HTML_ANCHOR.findall(text))
    for heading in _HEADING.findall(text):
        slug = github_slug(heading)
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def links(path: Path) -> Iterator[tuple[int, str]]:
    """(line, target) of every inline link and image outside code."""
    for number, line in enumerate(_without_code(path.read_text(encoding="utf-8")).split("\n"), 1):
        for target in _LINK.findall(line):
            yield number, target


def broken_links(path: Path) -> list[str]:
    """Each relative link of ``path`` whose file or heading does not exist, with why."""
    problems = []
    for line, target in links(path):
        if not target or _SCHEME.match(target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file)).resolve() if file else path
        where = f"{path.name}:{line}: ({target})"
        if not dest.exists():
            problems.append(f"{where} {file} does not exist")
        elif anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
            problems.append(f"{where} {dest.name} has no heading with the anchor #{anchor}")
    return problems


@pytest.mark.parametrize("doc", documents(), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves(doc: Path) -> None:
    problems = broken_links(doc)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## The `SEX_CODES` set\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\n## Same page\n\n"
        "[ok](other.md) [ok](other.md#other-page) [ok](other.md#the-sex_codes-set) "
        "[ok](#same-page) [ok](https://example.org/x.md#y) ![ok](other.md)\n"
        "`[not a link](gone.md)`\n\n```\n[not a link](gone.md)\n```\n"
        "[broken](gone.md) [broken](other.md#no-such-heading) [broken](#nowhere)\n"
    )
    problems = broken_links(doc)
    assert len(problems) == 3, problems
    assert all(":11:" in p for p in problems), problems


def test_github_slugs() -> None:
    assert github_slug("Rotating the pseudonymisation key") == "rotating-the-pseudonymisation-key"
    assert github_slug("`gp/patients`") == "gppatients"
    assert github_slug("Scale-out: linkage on Spark") == "scale-out-linkage-on-spark"
    assert github_slug("Aggregate marts: suppression and differencing") == (
        "aggregate-marts-suppression-and-differencing"
    )


def test_contracts_doc_is_generated_from_the_code() -> None:
    expected = contract_docs.render()
    current = CONTRACTS_DOC.read_text(encoding="utf-8") if CONTRACTS_DOC.exists() else ""
    diff = "".join(
        list(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "docs/contracts.md (committed)",
                "docs/contracts.md (from the code)",
            )
        )[:60]
    )
    assert current == expected, (
        "docs/contracts.md does not match the contracts, zones, ledger or marts in the code. "
        f"Regenerate it with `{contract_docs.COMMAND}` and commit it.\n{diff}"
    )


def test_readme_is_an_entry_point() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail into "
        "docs/ and link to it"
    )
    targets = {target.partition("#")[0] for _line, target in links(README)}
    assert "docs/contracts.md" in targets
    assert "CONTRIBUTING.md" in targets


def tracked_files() -> list[Path]:
    """Files git tracks in the repository, or every file outside tool folders without git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
        ).stdout.decode()
        return [REPO_ROOT / name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "target", "logs"}
        return [
            p
            for p in REPO_ROOT.rglob("*")
            if p.is_file()
            and not skip & set(p.relative_to(REPO_ROOT).parts)
            and not p.relative_to(REPO_ROOT).parts[0].startswith("data")
        ]


def test_nothing_refers_to_the_external_contracts_file() -> None:
    naming = []
    for path in tracked_files():
        try:
            content = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):  # deleted in the work tree
            continue
        relative = path.relative_to(REPO_ROOT).as_posix()
        if OLD_CONTRACTS.encode() in content and relative not in MAY_NAME_OLD_CONTRACTS:
            naming.append(relative)
    assert not naming, (
        f"these files name {OLD_CONTRACTS}, which is not in the repository (point at "
        f"docs/contracts.md instead): {', '.join(sorted(naming))}"
    )


def test_every_test_the_threat_model_names_exists() -> None:
    """docs/security.md names the test behind each control: each must be there to fail."""
    text = (REPO_ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(named) >= 20
    # A row may name more tests of the same file as `::name` alone.
    for row in text.splitlines():
        files = re.findall(r"`(tests/[\w/]+\.py)", row)
        for name in re.findall(r"`(?:tests/[\w/]+\.py)?::(\w+)`", row):
            assert files, f"{name} has no file in its row"
            assert any(
                re.search(rf"^def {name}\b", (REPO_ROOT / f).read_text(), re.M) for f in files
            ), f"docs/security.md names {name}, which no test file of its row defines"
    for path, _ in named:
        assert (REPO_ROOT / path).is_file(), path
