"""Stages ``opt_outs`` and ``pseudonymise``: nothing identifiable leaves landing/.

* :mod:`.opt_outs` removes every record of a person who opted out (national data
  opt-out, GP type 1 objections) before anything else reads the rows
  (``landing/_cleared/``, ``landing/_opted_out/``); type 1 codes are resolved per
  person, pooled by NHS number, an objection winning a same-day tie; quarantined rows
  still count for opt-outs.
* :mod:`.pseudonymise` replaces identifiers with keyed tokens and linkage encodings
  (:mod:`.encodings`) and drops names, NHS numbers, dates of birth and postcodes
  (``pseudonymised/``, and ``restricted/`` for opted-out people's encodings).

A date of birth after the day of the run is implausible, so re-runs give
byte-identical outputs unless a recorded date of birth falls between the two run days.
"""

from joinedup.deidentify.opt_outs import remove_opt_outs
from joinedup.deidentify.pseudonymise import pseudonymise

__all__ = ["pseudonymise", "remove_opt_outs"]
