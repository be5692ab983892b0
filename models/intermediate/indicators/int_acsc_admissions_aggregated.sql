{#
  Emergency admissions for chronic ambulatory care sensitive conditions (NHS Outcomes
  Framework 2.3.i) counted for commissioners, before disclosure control
  (mart_acsc_admissions publishes them through suppress_small_numbers), by the month of
  admission and the person's place, age on the day, sex and IMD quintile, beside the
  registered population of every age in the same cells.
#}
with

{{ indicator_cell_imports() }}

counted as (
    {{ indicator_event_rows(['chronic_acsc_admission']) }}
),

event_cells as (
    select
        {{ commissioner_breakdown_columns() }},
        {{ population_is_undefined() }} as population_is_undefined,
        count(*) as chronic_acsc_admissions
    from counted
    {{ commissioner_group_by() }}
)

select
    {{ indicator_cell_keys() }},
    {{ population_denominator_source() }} as denominator_source,
    {{ population_cell('registered_population') }} as registered_population,
    {{ event_cell_count('chronic_acsc_admissions') }} as chronic_acsc_admissions
{{ indicator_cells_joined() }}
