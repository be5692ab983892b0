"""The privacy gate on a real run whose people are called Date, Max, May, White, ...

Real populations are full of names that are ordinary words of chart and documentation
text. A synthetic population has every given name and surname replaced by one of those
words (capitalised, upper and lower case), then goes through the real ingest, opt-outs,
pseudonymisation, Splink linkage with its charts (the cluster studio among them), the
landing, pseudonymised and linked GX gates (Data Docs) and the dbt build: the gate must
pass on everything that run wrote. The same gate must still fail when one of those
people's full name and NHS number is planted in a chart's data or in a text file.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import polars as pl
import pytest
from ingest_fixtures import KEY, run_all

import joinedup.linkage
import joinedup.synth
from joinedup import pipeline
from joinedup.catalogue import LINKAGE_CHARTS
from joinedup.privacy.scan import PrivacyLeakError, _identifier_kind, _person_tables

pytestmark = pytest.mark.slow  # a whole run up to the warehouse: minutes on two cores

WORDS = ("Date", "Page", "Field", "Link", "Price", "Max", "Mark", "May", "Will", "Rose")
WORDS += ("White", "Green")
# Words of the prose Splink writes into its charts' data ("... times more likely ...").
WORDS += ("More", "Less", "Then", "Times", "Prior")
RUN = "run-1"


def _as_words(data_dir: Path) -> pl.DataFrame:
    """Replace every name in landing/ by the words; returns one person's identifiers."""
    rng = random.Random(7)
    person = None
    for table in _person_tables():
        for path in sorted((data_dir / "landing" / table.source).glob(table.file_glob)):
            frame = pl.read_csv(path, infer_schema=False)
            names = [c for c in frame.columns if _identifier_kind(table, c) == "name"]
            if not names:
                continue
            casing = rng.choice((str.capitalize, str.upper, str.lower))
            words = pl.Series([casing(rng.choice(WORDS)) for _ in range(frame.height * len(names))])
            frame = frame.with_columns(
                pl.when(pl.col(c).is_not_null())
                .then(pl.lit(words[i * frame.height : (i + 1) * frame.height]))
                .otherwise(None)
                .alias(c)
                for i, c in enumerate(names)
            )
            frame.write_csv(path)
            nhs = next(c for c in frame.columns if _identifier_kind(table, c) == "nhs_number")
            if person is None:
                person = frame.filter(pl.col(nhs).is_not_null()).select([*names, nhs]).head(1)
    assert person is not None and person.height == 1
    return person


@pytest.fixture(scope="module")
def word_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    data_dir = tmp_path_factory.mktemp("word-names") / "data"
    joinedup.synth.generate(data_dir, people=400, seed=5)
    person = _as_words(data_dir).row(0)
    run_all(data_dir)
    joinedup.linkage.link(data_dir, RUN, KEY, charts=True)
    for zone in ("landing", "pseudonymised", "linked"):
        pipeline.quality_gate(data_dir, zone, RUN)
    pipeline.build_warehouse_stage(data_dir, RUN)
    return data_dir, [str(v) for v in person]


def test_people_named_like_chart_words_pass_the_gate(word_run) -> None:
    data_dir, _person = word_run
    charts = {p.name for p in (data_dir / LINKAGE_CHARTS).glob("*.html")}
    assert "cluster_studio.html" in charts  # the page that raised the false alarm
    assert any((data_dir / "quality").rglob("*.html"))  # Data Docs were written
    summary = pipeline.privacy_gate(data_dir)
    assert summary["findings"] == 0
    assert {"pseudonymised", "linked", "warehouse.duckdb", "quality"} <= set(summary["scanned"])


def test_the_same_people_planted_in_a_chart_or_a_note_are_found(word_run, tmp_path) -> None:
    data_dir, person = word_run
    given, family, nhs = person[0], person[1], person[-1]
    planted = f"{given.capitalize()} {family.capitalize()} {nhs}"
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("airflow"))
    # In the data a chart embeds: one more row of what its Vega spec plots.
    chart = copy / LINKAGE_CHARTS / "match_weights.html"
    html = chart.read_text(encoding="utf-8")
    plotted = '"data": {"values": ['
    assert plotted in html, "the chart embeds no data to plant in"
    row = json.dumps({"label_for_charts": planted})
    html = html.replace(plotted, f"{plotted}{row}, ", 1)
    chart.write_text(html, encoding="utf-8")
    with pytest.raises(PrivacyLeakError, match=r"match_weights\.html"):
        pipeline.privacy_gate(copy)

    shutil.copyfile(data_dir / LINKAGE_CHARTS / "match_weights.html", chart)
    note = copy / "quality" / "notes.md"
    note.write_text(f"# Reviewed\n\nChecked the record of {planted} by hand.\n")
    with pytest.raises(PrivacyLeakError, match=r"notes\.md"):
        pipeline.privacy_gate(copy)
