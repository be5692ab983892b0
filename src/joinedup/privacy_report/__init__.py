"""Re-identification risk of what is published, coarsening, and the data protection pack.

* :mod:`.kanon` - equivalence classes of people over published quasi-identifiers (k);
* :mod:`.differencing` - the suppression rule, and suppressed cells recoverable by
  subtraction across the aggregate marts' margins;
* :mod:`.coarsening` - which columns each coarsening option withholds (one definition
  for dbt, the report and the pack);
* :mod:`.pack` - the data protection pack, generated from the code and the last run;
* :mod:`.html` - both as self-contained HTML;
* :mod:`.report` - ``write_privacy_report``, called by the pipeline stage and the CLI.

Nothing is imported here: the dbt build needs only :mod:`.coarsening`.
"""
