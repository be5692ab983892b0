"""Privacy controls: who may read what, no identifier in any output, disclosure control.

* :mod:`.permissions` - owner-only zones (the catalogue says which), applied on write;
* :mod:`.scan` - the privacy gate: no landing identifier in any de-identified output;
* :mod:`.identifiers` - identifier-shaped values in pseudonymised tables (for their GX gate);
* :mod:`.rules` - the disclosure rule's numbers (threshold, rounding base);
* :mod:`.differencing` - suppressed cells recoverable by subtraction across margins;
* :mod:`.secondary_suppression` - withholds more cells until none is recovered exactly;
* :mod:`.kanon` - equivalence classes of people over published quasi-identifiers (k);
* :mod:`.coarsening` - which columns each coarsening option withholds;
* :mod:`.pack`, :mod:`.html`, :mod:`.report` - the re-identification risk report and the
  data protection pack (``privacy/``), written by the ``privacy_report`` stage.

Nothing is imported here: joinedup.atomic needs only :mod:`.permissions`, the dbt
build only :mod:`.coarsening`.
"""
