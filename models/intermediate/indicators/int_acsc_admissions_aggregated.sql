{#
  Emergency admissions for chronic ambulatory care sensitive conditions (NHS Outcomes
  Framework 2.3.i) counted for commissioners, before disclosure control
  (mart_acsc_admissions publishes them through suppress_small_numbers), by the month of
  admission and the person's place, age on the day, sex and IMD quintile, beside the
  registered population of every age in the same cells.
#}
with

{{ indicator_imports() }}

counted as (
    {{ indicator_rows(['chronic_acsc_admission']) }}
)

select
    {{ commissioner_breakdown_columns() }},
    {{ population_denominator_source() }} as denominator_source,
    {{ registered_population_count() }} as registered_population,
    count(*) filter (where not is_population) as chronic_acsc_admissions
from counted
{{ commissioner_group_by() }}
