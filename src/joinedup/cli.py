"""The ``joinedup`` command line.

Errors a person can act on are printed as one line on stderr with a non-zero
exit status; tracebacks are kept for bugs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

from joinedup.synth import SynthError, generate

app = typer.Typer(
    help="joinedup: linked-data population health pipeline (synthetic data only in demos).",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"joinedup: error: {message}", err=True)
    raise typer.Exit(code)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def synth(
    people: Annotated[int, typer.Option(help="number of people in the population")] = 10_000,
    seed: Annotated[int, typer.Option(help="random seed; same arguments, same files")] = 42,
    out: Annotated[Path, typer.Option(help="data directory for landing/ and truth/")] = Path(
        "data"
    ),
    start: Annotated[str, typer.Option(help="first month of activity, YYYY-MM")] = "2025-04",
    months: Annotated[int, typer.Option(help="number of months of activity")] = 12,
) -> None:
    """Write a synthetic landing zone (GP, hospital, social care, opt-outs) and its truth."""
    with tqdm(total=max(people, 0), unit="people", desc="synth", disable=None) as bar:
        try:
            summary = generate(out, people, seed, start=start, months=months, progress=bar.update)
        except SynthError as exc:
            bar.close()
            fail(str(exc))
    typer.echo(
        f"wrote {summary.people:,} people (seed {seed}) to {out}/landing in {summary.seconds:.1f}s"
    )
    for table, rows in summary.rows.items():
        typer.echo(f"  {table:<34} {rows:>12,} rows")


if __name__ == "__main__":  # pragma: no cover
    app()
