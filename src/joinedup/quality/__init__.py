"""Great Expectations quality gates on every zone, with Data Docs.

dbt's tests check model logic; these gates check that the data entering and
leaving each zone is fit to use, stop the run when it is not, and show people
what they found. The pipeline calls them (no GX Airflow provider) with
``run_gates(data_dir, zone, run_id)``; the DAG (``dags/joinedup_link_and_build.py``)
says when each zone's gate runs. Each raises :class:`QualityGateError` when a
critical expectation fails and returns a JSON-able summary otherwise.

Where things are - to change a rule, edit its zone's module and regenerate the
project (``uv run python -m joinedup.quality.suites``):

* one module per zone's gate, holding its suites (each expectation with its
  severity and why it exists) and the batches they validate: :mod:`.landing`,
  :mod:`.pseudonymised`, :mod:`.linked`, :mod:`.marts`;
* shared: :mod:`.rules` (the :class:`~.rules.Suite` and expectation helpers),
  :mod:`.formats` (format scans and masks of token columns), :mod:`.batches`
  (what a gate hands GX, :class:`BatchError`), :mod:`.frames` (Polars to pandas at
  GX's boundary), :mod:`.project` (the GX project on disk), :mod:`.suites` (writes
  every suite into ``expectations/``), :mod:`.gates` (runs a gate, decides, renders
  Data Docs to ``DATA/quality/``).

The identifier scan of the pseudonymised gate is :mod:`joinedup.privacy.identifiers`.
"""

from joinedup.quality.batches import BatchError
from joinedup.quality.gates import (
    ZONES,
    QualityGateError,
    build_data_docs,
    data_docs_index,
    run_gates,
)

__all__ = [
    "ZONES",
    "BatchError",
    "QualityGateError",
    "build_data_docs",
    "data_docs_index",
    "run_gates",
]
