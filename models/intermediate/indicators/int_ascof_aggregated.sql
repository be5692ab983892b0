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

{{ import_ctes({
    'events': ref('int_ascof_events_selected'),
    'population': ref('int_indicator_population_registered'),
}) }}
{{ commissioner_dimension_imports() }}

counted as (
    {{ indicator_rows(
        ['long_term_admission', 'long_term_support'],
        ['measure', 'person_id', 'age_at_period_end', 'is_settled_in_month', 'is_settled_in_period'],
    ) }}
)

select
    {{ commissioner_breakdown_columns() }},
    {{ population_denominator_source() }} as denominator_source,
    {{ registered_population_count('age between 18 and 64') }} as registered_population_18_to_64,
    {{ registered_population_count('age >= 65') }} as registered_population_65_and_over,
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
