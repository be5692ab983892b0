"""Probabilistic linkage of pseudonymised source records into persons (Splink).

The model is data in the repository's ``linkage/`` folder (settings.json:
comparisons and blocking rules, as Splink reads them; training.json: how it is
trained and where it cuts). This package only runs it.
"""

from joinedup.linkage.link import LinkageError, link
from joinedup.linkage.model import LinkageModel, load_model

__all__ = ["LinkageError", "LinkageModel", "link", "load_model"]
