"""Every zone's suites, written once into the committed GX project under ``expectations/``.

The JSON files GX writes there (suites, validation definitions, checkpoints and
the dataframe assets in ``great_expectations.yml``) are what runs: a pipeline
run only reads them. The suites themselves - each expectation with its severity
and the notes that say why it exists - live in their zone's gate module
(:mod:`.landing`, :mod:`.pseudonymised`, :mod:`.linked`, :mod:`.marts`), next to
the batches they validate, and are made of :mod:`.rules`. This module writes
them out; after changing a rule, remake the project with::

    uv run python -m joinedup.quality.suites     # rewrites expectations/ in place

``tests/test_quality.py`` fails when the committed files and the zone modules
disagree, so neither can drift from the other.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import yaml

from joinedup.quality.gates import GATES
from joinedup.quality.project import (
    BATCH_DEFINITION,
    DATASOURCE,
    expectations_dir,
    open_context,
)
from joinedup.quality.rules import Suite

log = logging.getLogger(__name__)


def all_suites() -> list[Suite]:
    """Every zone's suites, zone by zone (:data:`joinedup.quality.gates.GATES`)."""
    return [suite for gate in GATES.values() for suite in gate.suites()]


def result_format(suite: Suite) -> dict[str, Any]:
    fmt: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 10}
    if suite.index_columns:
        fmt["unexpected_index_column_names"] = suite.index_columns
    return fmt


def write_project(root: Path | None = None) -> Path:
    """(Re)write every suite, asset, validation definition and checkpoint under ``root``.

    Only ``great_expectations.yml``'s settings survive; every suite the zones define is
    written anew, so the files always say exactly what :func:`all_suites` says.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import Checkpoint

    root = Path(root or expectations_dir()).resolve()
    backend_id = root / "expectations" / ".ge_store_backend_id"
    kept_backend_id = backend_id.read_bytes() if backend_id.exists() else None
    for sub in ("expectations", "validation_definitions", "checkpoints"):
        shutil.rmtree(root / sub, ignore_errors=True)
    config_path = root / "great_expectations.yml"
    config = yaml.safe_load(config_path.read_text())
    config["fluent_datasources"] = {DATASOURCE: {"type": "pandas"}}
    config_path.write_text(_HEADER + yaml.safe_dump(config, sort_keys=False))

    scratch = root / ".write-project-data"
    try:
        with open_context(scratch, root) as context:
            source = context.data_sources.get(DATASOURCE)
            for spec in all_suites():
                batch = source.add_dataframe_asset(spec.name).add_batch_definition_whole_dataframe(
                    BATCH_DEFINITION
                )
                suite = context.suites.add(
                    gx.ExpectationSuite(
                        spec.name,
                        expectations=spec.expectations,
                        meta={"zone": spec.zone, "description": spec.description},
                    )
                )
                definition = context.validation_definitions.add(
                    gx.ValidationDefinition(name=spec.name, data=batch, suite=suite)
                )
                context.checkpoints.add(
                    Checkpoint(
                        name=spec.name,
                        validation_definitions=[definition],
                        actions=[],
                        result_format=result_format(spec),
                    )
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # GX re-serialises the config when assets are added; keep the explanatory header.
    text = config_path.read_text()
    if not text.startswith(_HEADER):
        config_path.write_text(_HEADER + text)
    if kept_backend_id is not None:
        backend_id.write_bytes(kept_backend_id)
    _stable_ids(root)
    log.info("wrote %d suites to %s", len(all_suites()), root)
    return root


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ID_NAMESPACE = uuid.UUID("6f1c2a9e-4a44-4c1e-9d3b-6a0f4f0c7e21")


def _stable_ids(root: Path) -> None:
    """Replace GX's random ids with ones derived from where each id is used.

    GX gives every suite, expectation, asset and definition a new uuid4 when it is
    written, so rewriting the project would change every file. An id's places of use
    (file and position) identify it, so its new id is a uuid5 of them: rewriting an
    unchanged project changes nothing, and a changed suite changes only its own files.
    """
    files = sorted(p for p in root.rglob("*") if p.suffix in (".json", ".yml") and p.is_file())
    places: dict[str, list[str]] = {}

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{where}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")
        elif isinstance(value, str) and _UUID.fullmatch(value):
            places.setdefault(value, []).append(where)

    texts = {p: p.read_text() for p in files}
    for path, text in texts.items():
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        walk(data, path.relative_to(root).as_posix())
    new = {old: str(uuid.uuid5(_ID_NAMESPACE, "|".join(sorted(w)))) for old, w in places.items()}
    for path, text in texts.items():
        path.write_text(_UUID.sub(lambda m: new.get(m.group(0), m.group(0)), text))


_HEADER = """\
# joinedup's Great Expectations project (GX 1.x). Suites, validation definitions and
# checkpoints live beside this file; `uv run python -m joinedup.quality.suites` rewrites them
# from src/joinedup/quality/suites.py. Runs never write here: validation results and Data
# Docs go to ${JOINEDUP_QUALITY_DIR} (DATA/quality/), set by joinedup.quality for each call.
"""


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(write_project())
