"""docs/faults.md names the test that proves each fault: every one it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ROOT / "docs" / "faults.md"


def test_every_test_the_faults_table_names_exists() -> None:
    text = FAULTS.read_text()
    defined = {
        name
        for path in (ROOT / "tests").rglob("test_*.py")
        for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M)
    }
    named = set(re.findall(r"\b(test_\w+)\b(?!\.py)", text))
    files = set(re.findall(r"\b(tests/[\w/]+\.py)\b", text))
    assert len(named) >= 40, "the table should name the tests behind its rows"
    missing = named - defined - {Path(f).stem for f in files}
    assert not missing, f"named in docs/faults.md but defined in no test module: {missing}"
    assert all((ROOT / f).exists() for f in files), [f for f in files if not (ROOT / f).exists()]
