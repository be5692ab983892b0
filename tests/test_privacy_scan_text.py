"""The privacy scan on free-text outputs (HTML charts with embedded JavaScript)."""

from __future__ import annotations

from pathlib import Path

from ingest_fixtures import PEOPLE, write_landing

from joinedup.privacy.scan import scan


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


def test_month_columns_are_not_dates_of_birth(tmp_path: Path) -> None:
    import polars as pl

    write_landing(tmp_path)
    birthday = PEOPLE["alice"][3]  # born on the first of a month
    assert birthday.endswith("-01")
    out = tmp_path / "out"
    out.mkdir()
    months = pl.DataFrame({"event_month": [birthday, "2025-02-01"]})
    months.write_parquet(out / "months.parquet")
    assert scan(tmp_path / "landing", [out]).height == 0
    # The same value in a column of real dates is a date of birth.
    pl.DataFrame({"seen": [birthday, "2025-02-14"]}).write_parquet(out / "dates.parquet")
    found = scan(tmp_path / "landing", [out])
    assert found.select("column", "value").rows() == [("seen", birthday)]


def test_the_projects_own_text_is_not_an_identifier(tmp_path: Path) -> None:
    write_landing(tmp_path)
    birthday = PEOPLE["bob"][3]
    page = tmp_path / "out" / "suite.html"
    page.parent.mkdir()
    page.write_text(f"<p>admission_date between {birthday} and 2026-01-01</p>")
    assert set(scan(tmp_path / "landing", [page])["value"]) == {birthday}
    # The same date written in a committed expectation suite is the gate's bound.
    suites = tmp_path / "expectations"
    suites.mkdir()
    (suites / "suite.json").write_text(f'{{"min_value": "{birthday}"}}')
    assert scan(tmp_path / "landing", [page], vocabulary=[suites]).height == 0
