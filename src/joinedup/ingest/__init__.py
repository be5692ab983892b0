"""Ingest, opt-out removal and pseudonymisation: plain stage functions for the DAG.

Run order for one run id (each returns a small JSON-able summary)::

    for source in SOURCES:                       # gp, hospital, social_care, opt_outs, reference
        ingest_source(data_dir, source, run_id)  # contracts, quarantine, ledger
    remove_opt_outs(data_dir, run_id)            # national opt-out + GP type 1 objections
    pseudonymise(data_dir, key, run_id)          # tokens and linkage encodings
    joinedup.linkage.link(data_dir, run_id, key) # finds opted-out records with no NHS number
    remove_linked_opt_outs(data_dir, key, run_id)  # ... removes them, counts them as opted out
    finalise_ledger(data_dir, run_id)            # received = loaded + quarantined + opted_out

The ``ingest_source`` calls may run in parallel (the ledger is locked).
Errors a person can act on derive from :class:`IngestError` (print the message,
no traceback needed); a missing key raises ``settings.MissingKeyError``.

Where things go (``DATA`` = the data dir):

=============================================  ===============================================
``landing/_validated/<source>/<table>.parquet``  rows that passed the contract (identifiable)
``landing/_cleared/<source>/<table>.parquet``    the same minus opted-out records (identifiable)
``landing/_opted_out/records.parquet``           demographics of removed records (identifiable)
``landing/_opted_out/reasons.parquet``           each removed record's reason (identifiable)
``quarantine/<source>/<table>.parquet``          rejected rows as sent + reason, file, line
                                                 (identifiable: same access as landing/)
``ledger.csv``                                   per run and file: where every row went
``pseudonymised/<source>/<table>.parquet``       de-identified tables (see pseudonymise.py)
``restricted/opted_out_encodings.parquet``       encodings of opted-out records, for linkage
                                                 to drop their NHS-number-less records; never
                                                 copied to any output
``restricted/linkage_opted_out_records.parquet`` records linkage matched to opted-out people
``restricted/linkage_opted_out_applied.parquet`` those removed from pseudonymised/ by
                                                 remove_linked_opt_outs (tokens only)
=============================================  ===============================================

Decisions (the module docstrings say why): non-UTF-8 bytes quarantine the
affected rows (read.py); an unparseable value in a typed non-identifier column
quarantines the row, a defective identifier is nulled and flagged
(validate.py); duplicate keys keep the first in file-name then line order
(validate.py); type 1 codes are resolved per person, pooled by NHS number, an
objection winning a same-day tie (opt_outs.py); quarantined rows still count
for opt-outs (opt_outs.py); hospital records take the most recent valid value
per field (records.py). A date of birth after the day of the run is
implausible, so re-runs give byte-identical outputs unless a recorded date of
birth falls between the two run days.
"""

from joinedup.ingest.errors import (
    IngestError,
    LedgerImbalanceError,
    MalformedHeaderError,
    MissingColumnsError,
    OptOutListMissingError,
)
from joinedup.ingest.ledger import finalise_ledger
from joinedup.ingest.linked_opt_outs import remove_linked_opt_outs
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
    "remove_linked_opt_outs",
    "remove_opt_outs",
]
