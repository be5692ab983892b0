{#
  ASCOF 2B, 2C and 2E counted for commissioners, before disclosure control (mart_ascof
  publishes them through suppress_small_numbers). Admissions to residential and nursing
  care are placed in the month of admission, beside the registered population aged 18
  to 64 and 65 and over (int_indicator_population_registered) in the same cells.
  People receiving long-term support are counted once a cell: in a month, those
  supported in it, with the month's accommodation status; in a cell without a month,
  everyone supported in the period, with the period's status (NHS England's measure).
#}
with

{{ indicator_cell_imports('int_ascof_events_selected') }}

counted as (
    {{ indicator_event_rows(
        ['long_term_admission', 'long_term_support'],
        ['measure', 'person_id', 'age_at_period_end', 'is_settled_in_month', 'is_settled_in_period'],
    ) }}
),

event_cells as (
    select
        {{ commissioner_breakdown_columns() }},
        {{ population_is_undefined() }} as population_is_undefined,
        count(*) filter (where measure = 'long_term_admission' and age_at_period_end between 18 and 64)
            as long_term_admissions_18_to_64,
        count(*) filter (where measure = 'long_term_admission' and age_at_period_end >= 65)
            as long_term_admissions_65_and_over,
        count(distinct person_id) filter (where measure = 'long_term_support')
            as people_receiving_long_term_support,
        case
            when grouping(activity_month) = 0
                then count(distinct person_id) filter (
                    where measure = 'long_term_support' and is_settled_in_month
                )
            else count(distinct person_id) filter (
                where measure = 'long_term_support' and is_settled_in_period
            )
        end as living_at_home_or_with_family
    from counted
    {{ commissioner_group_by() }}
)

select
    {{ indicator_cell_keys() }},
    {{ population_denominator_source() }} as denominator_source,
    {{ population_cell('registered_population_18_to_64') }} as registered_population_18_to_64,
    {{ population_cell('registered_population_65_and_over') }} as registered_population_65_and_over,
    {{ event_cell_count('long_term_admissions_18_to_64') }} as long_term_admissions_18_to_64,
    {{ event_cell_count('long_term_admissions_65_and_over') }} as long_term_admissions_65_and_over,
    {{ event_cell_count('people_receiving_long_term_support') }} as people_receiving_long_term_support,
    {{ event_cell_count('living_at_home_or_with_family') }} as living_at_home_or_with_family
{{ indicator_cells_joined() }}
