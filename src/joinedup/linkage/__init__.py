"""Stages ``link`` and ``remove_linked_opt_outs``: pseudonymised records into persons (Splink).

The model is data in the repository's ``linkage/`` folder (settings.json:
comparisons and blocking rules, as Splink reads them; training.json: how it is
trained and where it cuts). This package only runs it. ``link`` also finds the
records of opted-out people that carry no NHS number; ``remove_linked_opt_outs``
takes them out of pseudonymised/ (the catalogue says why a later stage changes
that zone).
"""

from joinedup.linkage.link import LinkageError, link
from joinedup.linkage.linked_opt_outs import remove_linked_opt_outs
from joinedup.linkage.model import LinkageModel, load_model

__all__ = ["LinkageError", "LinkageModel", "link", "load_model", "remove_linked_opt_outs"]
