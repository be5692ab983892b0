"""Errors a data engineer can act on.

Each message says what was wrong, where (file, line, column, run) and what to
do, so the CLI can print it without a traceback: catch :class:`IngestError`.
"""

from __future__ import annotations

# What every whole-file rejection tells a person to do.
REJECTED = (
    "The whole file was rejected and nothing from this source was loaded in this run; "
    "ask the supplier to re-deliver it as docs/contracts.md describes, or move it out of the "
    "landing folder, then re-run."
)


class IngestError(RuntimeError):
    """Base class: the run must stop; the message tells a person what to fix."""


class RejectedFileError(IngestError):
    """A landing file that cannot be read as a delivery at all; the whole file is rejected.

    Raised while every file's header is checked, before any row is read, so the
    source's previous outputs are left untouched.
    """

    def __init__(self, file: str, problem: str) -> None:
        self.file = file
        super().__init__(f"{file}: {problem} {REJECTED}")


class MissingColumnsError(RejectedFileError):
    """A landing file lacks contract columns; the whole file is rejected."""

    def __init__(self, file: str, missing: list[str], expected: tuple[str, ...]) -> None:
        self.missing = missing
        super().__init__(
            file,
            f"missing required column(s) {', '.join(missing)}. "
            f"The contract for this table expects: {', '.join(expected)}.",
        )


class EmptyFileError(MissingColumnsError):
    """A file with no header row (0 bytes, or a blank first line): not even an empty delivery."""

    def __init__(self, file: str, what: str, expected: tuple[str, ...]) -> None:
        self.missing = list(expected)
        RejectedFileError.__init__(
            self,
            file,
            f"missing required column(s): {what}, so there is no header row. A delivery "
            "with no rows is still a header line (docs/contracts.md); this may be a transfer that "
            f"failed part-way. The contract for this table expects: {', '.join(expected)}.",
        )


class MalformedHeaderError(RejectedFileError):
    """A landing file's header cannot be read as the contract's columns."""


class NotCsvTextError(RejectedFileError):
    """Compressed, binary or non-UTF-8 content, or line breaks the reader cannot split on."""


class UnsafeFileError(RejectedFileError):
    """A file name or location that could lead reads or derived names outside the data dir."""


class MalformedCsvError(RejectedFileError):
    """The file's quoting leaves its rows ambiguous (a quoted value that never closes)."""


class OptOutListMissingError(IngestError):
    """No national data opt-out file: running without it would publish opted-out people."""


class LedgerImbalanceError(IngestError):
    """The ledger's row accounting does not add up for a run."""


class LayoutFileError(MissingColumnsError):
    """A file in a national layout (or a local mapping) lacks columns that layout requires."""

    def __init__(self, file: str, missing: list[str], layout: object) -> None:
        self.missing = missing
        name = getattr(layout, "name", "?")
        path = getattr(layout, "path", None)
        hint = (
            f"the mapping {path} reads this file: add the column's local name to its rename"
            if getattr(layout, "extends", None)
            else f"the {name} layout ({path}) expects it; if this supplier names it "
            "differently, describe the variant in a mapping file (docs/runbook.md, "
            "'Adding a feed or a local variant')"
        )
        RejectedFileError.__init__(
            self, file, f"missing column(s) {', '.join(missing)} of layout {name}: {hint}."
        )
