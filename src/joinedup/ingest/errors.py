"""Errors a data engineer can act on.

Each message says what was wrong, where (file, column, run) and what to do, so
the CLI can print it without a traceback: catch :class:`IngestError`.
"""

from __future__ import annotations


class IngestError(RuntimeError):
    """Base class: the run must stop; the message tells a person what to fix."""


class MissingColumnsError(IngestError):
    """A landing file lacks contract columns; the whole file is rejected."""

    def __init__(self, file: str, missing: list[str], expected: tuple[str, ...]) -> None:
        self.file = file
        self.missing = missing
        super().__init__(
            f"{file}: missing required column(s) {', '.join(missing)}. "
            f"The contract for this table expects: {', '.join(expected)}. "
            "The whole file was rejected and nothing from this source was loaded in this run; "
            "ask the supplier to re-deliver it with the full header (see CONTRACTS.md), "
            "or move it out of the landing folder, then re-run."
        )


class MalformedHeaderError(IngestError):
    """A landing file's header cannot be read as the contract's columns."""


class OptOutListMissingError(IngestError):
    """No national data opt-out file: running without it would publish opted-out people."""


class LedgerImbalanceError(IngestError):
    """The ledger's row accounting does not add up for a run."""
