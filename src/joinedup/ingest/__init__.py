"""Stage ``ingest_<source>``: landing extracts checked against their data contracts.

Each delivery file of a source is read, validated against its contract
(:mod:`joinedup.contracts`), and split into valid rows (``landing/_validated/``) and
quarantined rows with a reason per row (``quarantine/``); the ledger records where
every row went. ``finalise_ledger`` (the ``finalise`` task) checks at the end of a run
that received = loaded + quarantined + opted out for every file.

Ingest calls may run in parallel (the ledger is locked). Errors a person can act on
derive from :class:`IngestError` (print the message, no traceback needed).

Decisions (the module docstrings say why): non-UTF-8 bytes quarantine the affected
rows (read.py); an unparseable value in a typed non-identifier column quarantines the
row, a defective identifier is nulled and flagged (validate.py); duplicate keys keep
the first in file-name then line order (validate.py); hospital records take the most
recent valid value per field (records.py); a re-delivered file is loaded once
(redelivery.py).
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

__all__ = [
    "SOURCES",
    "IngestError",
    "LedgerImbalanceError",
    "MalformedHeaderError",
    "MissingColumnsError",
    "OptOutListMissingError",
    "finalise_ledger",
    "ingest_source",
]
