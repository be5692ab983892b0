"""The privacy scan on free-text outputs (HTML charts with embedded JavaScript)."""

from __future__ import annotations

from pathlib import Path

from ingest_fixtures import PEOPLE, write_landing

from joinedup.privacy_scan import scan


def test_code_words_are_not_names_but_embedded_data_is(tmp_path: Path) -> None:
    write_landing(tmp_path)
    chart = tmp_path / "out" / "chart.html"
    chart.parent.mkdir()
    # Minified library code and its comments use words that are also surnames.
    chart.write_text(
        "<script>function smith(a){return a.jones()} // see github.com/Smith-Jones</script>"
    )
    assert scan(tmp_path / "landing", [chart]).height == 0
    nhs = PEOPLE["alice"][0]
    chart.write_text(f'<script>var data={{"family": "Smith", "n": "{nhs}"}}</script>')
    found = scan(tmp_path / "landing", [chart])
    assert set(found["value"]) == {"smith", nhs}
