"""Where the Great Expectations project lives and how a run opens it.

The project (``great_expectations.yml``, suites, validation definitions and
checkpoints) is committed under the repository's ``expectations/`` folder. What
a run produces - validation results and Data Docs - goes under the data
directory (``DATA/quality/``), never into the repository: the project's stores
name ``${JOINEDUP_QUALITY_DIR}``, which :func:`open_context` sets for the
duration of the call.

Every batch is a pandas DataFrame handed to a dataframe asset at run time
(``batch_parameters={"dataframe": ...}``), so nothing in the committed project
names a path on any machine. One checkpoint per suite, because a checkpoint
hands the same batch parameters to every validation definition it holds.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from joinedup.catalogue import EXPECTATIONS_DIR, QUALITY
from joinedup.privacy.permissions import make_private_dirs

# An installed package (a Docker image, say) points this at its copy of expectations/.
EXPECTATIONS_DIR_ENV = "JOINEDUP_EXPECTATIONS_DIR"
QUALITY_DIR_ENV = "JOINEDUP_QUALITY_DIR"

DATASOURCE = "joinedup"
BATCH_DEFINITION = "whole_dataframe"
DOCS_SITE = "joinedup_quality"

# GX reads the substitution variables when a context is created; one at a time per process.
_LOCK = threading.RLock()


def expectations_dir() -> Path:
    """The committed GX project: ``$JOINEDUP_EXPECTATIONS_DIR`` or the repository's."""
    configured = os.environ.get(EXPECTATIONS_DIR_ENV)
    return Path(configured) if configured else EXPECTATIONS_DIR


def quality_dir(data_dir: Path) -> Path:
    return QUALITY.under(Path(data_dir).resolve())


def docs_dir(data_dir: Path) -> Path:
    return quality_dir(data_dir) / "docs"


@contextmanager
def open_context(data_dir: Path, project: Path | None = None) -> Iterator[Any]:
    """A file-backed GX context on the committed project, writing under ``DATA/quality/``."""
    import great_expectations as gx

    root = Path(project or expectations_dir()).resolve()
    if not (root / "great_expectations.yml").exists():
        raise FileNotFoundError(
            f"no Great Expectations project at {root} (great_expectations.yml not found); "
            f"set {EXPECTATIONS_DIR_ENV} to the project's expectations/ folder."
        )
    target = quality_dir(data_dir)
    # GX results quote failing values: owner-only, whatever the umask GX writes with.
    make_private_dirs(target, target)
    with _LOCK:
        saved = os.environ.get(QUALITY_DIR_ENV)
        os.environ[QUALITY_DIR_ENV] = str(target)
        # No usage statistics leave the machine (also off in great_expectations.yml).
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        try:
            yield gx.get_context(mode="file", context_root_dir=str(root))
        finally:
            if saved is None:
                os.environ.pop(QUALITY_DIR_ENV, None)
            else:
                os.environ[QUALITY_DIR_ENV] = saved
