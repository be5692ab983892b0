"""People whose names are ordinary words: the gate finds them where they are data, not in
a chart's interface text or the project's own files."""

from __future__ import annotations

import json
from pathlib import Path

from ingest_fixtures import baseline_rows, write_landing

from joinedup.privacy.scan import scan


def test_word_names_pass_in_chart_code_but_are_found_in_its_data(tmp_path: Path) -> None:
    rows = baseline_rows()
    rows["gp/patients"][0]["given_name"] = "Max"
    rows["gp/patients"][0]["family_name"] = "Date"
    write_landing(tmp_path, rows)
    chart = tmp_path / "out" / "chart.html"
    chart.parent.mkdir()
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": "Date",
        "data": {"values": [{"label_for_charts": "Exact match on date_of_birth"}]},
    }
    library = 'isNaN(e)?"Invalid Date":e;E=fs([{fieldPrefix:"max_",titlePrefix:"Max"}]);'
    chart.write_text(
        f"<script>{library}</script><script>vegaEmbed(el, {json.dumps(spec)})</script>"
    )
    suites = tmp_path / "expectations"
    suites.mkdir()
    (suites / "suite.json").write_text('{"max_value": 3, "note": "Max"}')
    assert scan(tmp_path / "landing", [chart], vocabulary=[suites]).height == 0
    # The same person planted in the data the chart plots is found, names and all.
    nhs = rows["gp/patients"][0]["nhs_number"]
    spec["data"]["values"].append({"who": f"Max Date {nhs}"})
    chart.write_text(
        f"<script>{library}</script><script>vegaEmbed(el, {json.dumps(spec)})</script>"
    )
    found = scan(tmp_path / "landing", [chart], vocabulary=[suites])
    assert {"max", "date", nhs} <= set(found["value"])
