"""Great Expectations quality gates on every zone, with Data Docs.

dbt's tests check model logic; these gates check that the data entering and
leaving each zone is fit to use, stop the run when it is not, and show people
what they found. Call them from the pipeline (no GX Airflow provider)::

    run_gates(data_dir, "landing", run_id)        # after ingest, before opt-outs
    run_gates(data_dir, "pseudonymised", run_id)  # after pseudonymise
    run_gates(data_dir, "linked", run_id)         # after link
    run_gates(data_dir, "marts", run_id)          # after build_warehouse, before publish

Each raises :class:`QualityGateError` when a critical expectation fails and
returns a JSON-able summary otherwise. The suites are the committed GX project
in ``expectations/`` (made by :mod:`joinedup.quality.suites`); results and Data
Docs go to ``DATA/quality/``.
"""

from joinedup.quality.batches import BatchError
from joinedup.quality.gates import QualityGateError, build_data_docs, run_gates
from joinedup.quality.project import ZONES

__all__ = ["ZONES", "BatchError", "QualityGateError", "build_data_docs", "run_gates"]
