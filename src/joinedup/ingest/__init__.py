"""Ingest, opt-out removal and pseudonymisation: plain stage functions for the DAG.

Run order for one run id (each returns a small JSON-able summary)::

    for source in SOURCES:                       # gp, hospital, social_care, opt_outs, reference
        ingest_source(data_dir, source, run_id)  # contracts, quarantine, ledger
    remove_opt_outs(data_dir, run_id)            # national opt-out + GP type 1 objections
    pseudonymise(data_dir, key, run_id)          # tokens and linkage encodings
    finalise_ledger(data_dir, run_id)            # received = loaded + quarantined + opted_out

Errors a person can act on derive from :class:`IngestError` (print the message,
no traceback needed).
"""

from joinedup.ingest.errors import (
    IngestError,
    LedgerImbalanceError,
    MalformedHeaderError,
    MissingColumnsError,
    OptOutListMissingError,
)
from joinedup.ingest.ledger import finalise_ledger
from joinedup.ingest.load import SOURCES, ingest_source
from joinedup.ingest.opt_outs import remove_opt_outs
from joinedup.ingest.pseudonymise import pseudonymise

__all__ = [
    "SOURCES",
    "IngestError",
    "LedgerImbalanceError",
    "MalformedHeaderError",
    "MissingColumnsError",
    "OptOutListMissingError",
    "finalise_ledger",
    "ingest_source",
    "pseudonymise",
    "remove_opt_outs",
]
