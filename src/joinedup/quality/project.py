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

import hashlib
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
# Contexts kept by reused_context: (project, quality dir, project files' digest) -> context.
_CONTEXTS: dict[tuple[Path, Path, str], Any] = {}


def expectations_dir() -> Path:
    """The committed GX project: ``$JOINEDUP_EXPECTATIONS_DIR`` or the repository's."""
    configured = os.environ.get(EXPECTATIONS_DIR_ENV)
    return Path(configured) if configured else EXPECTATIONS_DIR


def quality_dir(data_dir: Path) -> Path:
    return QUALITY.under(Path(data_dir).resolve())


def docs_dir(data_dir: Path) -> Path:
    return quality_dir(data_dir) / "docs"


def _project_root(project: Path | None) -> Path:
    root = Path(project or expectations_dir()).resolve()
    if not (root / "great_expectations.yml").exists():
        raise FileNotFoundError(
            f"no Great Expectations project at {root} (great_expectations.yml not found); "
            f"set {EXPECTATIONS_DIR_ENV} to the project's expectations/ folder."
        )
    return root


def project_digest(root: Path) -> str:
    """SHA-256 over every file of the project (names and bytes): what a context was made of."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@contextmanager
def _quality_dir_set(target: Path) -> Iterator[None]:
    # GX results quote failing values: owner-only, whatever the umask GX writes with.
    make_private_dirs(target, target)
    with _LOCK:
        saved = os.environ.get(QUALITY_DIR_ENV)
        os.environ[QUALITY_DIR_ENV] = str(target)
        # No usage statistics leave the machine (also off in great_expectations.yml).
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop(QUALITY_DIR_ENV, None)
            else:
                os.environ[QUALITY_DIR_ENV] = saved


@contextmanager
def open_context(data_dir: Path, project: Path | None = None) -> Iterator[Any]:
    """A new file-backed GX context on the committed project, writing under ``DATA/quality/``."""
    import great_expectations as gx

    root = _project_root(project)
    with _quality_dir_set(quality_dir(data_dir)):
        yield gx.get_context(mode="file", context_root_dir=str(root))


@contextmanager
def reused_context(data_dir: Path, project: Path | None = None) -> Iterator[Any]:
    """Like :func:`open_context`, but this process's context for the same project files.

    Making a context reads and validates the whole project (0.2-0.4 s, more under load),
    and a run's gates all run in one process (``dag.test()``), so each run paid it once per
    gate (issue 23). A context is reused only while every file of the project is byte for
    byte what it was made from, and for the same ``DATA/quality/`` (its stores were
    resolved against it): a changed suite makes a new context, never a stale one. For
    reading the project and running checkpoints; :func:`open_context` for changing it.
    """
    import great_expectations as gx

    root = _project_root(project)
    target = quality_dir(data_dir)
    with _quality_dir_set(target):
        key = (root, target, project_digest(root))
        context = _CONTEXTS.get(key)
        if context is None:
            # Contexts of older project files, or other data directories, are not kept.
            _CONTEXTS.clear()
            context = _CONTEXTS[key] = gx.get_context(mode="file", context_root_dir=str(root))
        yield context


def forget_contexts() -> None:
    """Drop the contexts :func:`reused_context` keeps: the next one is made afresh."""
    with _LOCK:
        _CONTEXTS.clear()
