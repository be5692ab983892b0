"""The privacy scan on free-text outputs (HTML charts with embedded JavaScript)."""

from __future__ import annotations

from pathlib import Path

from ingest_fixtures import write_landing

from joinedup.privacy_scan import scan


def test_code_words_are_not_names_but_written_names_are(tmp_path: Path) -> None:
    write_landing(tmp_path)
    chart = tmp_path / "out" / "chart.html"
    chart.parent.mkdir()
    # Minified library code uses words that are also surnames ("smith", "jones").
    chart.write_text("<script>function smith(a){return a.jones()}</script>")
    assert scan(tmp_path / "landing", [chart]).height == 0
    chart.write_text('<script>var data={"family":"Smith"}</script><p>JONES</p>')
    found = scan(tmp_path / "landing", [chart])
    assert set(found["value"]) == {"smith", "jones"}
