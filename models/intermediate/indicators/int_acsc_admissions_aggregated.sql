{#
  Emergency admissions for chronic ambulatory care sensitive conditions (NHS Outcomes
  Framework 2.3.i) counted for commissioners, before disclosure control
  (mart_acsc_admissions publishes them through suppress_small_numbers), by the month of
  admission and the person's place, age on the day, sex and IMD quintile, beside the
  registered population of every age in the same cells.
#}
with

events as (
    select * from {{ ref('int_indicator_events_selected') }}
),

population as (
    select * from {{ ref('int_indicator_population_registered') }}
),

people as (
    select * from {{ ref('int_persons_demographics_resolved') }}
),

extract_window as (
    select * from {{ ref('int_extract_window_derived') }}
),

age_bands as (
    select * from {{ ref('ref_age_bands') }}
),

sexes as (
    select * from {{ ref('ref_sex_codes') }}
),

counted as (
    select
        {{ commissioner_dimension_columns('events', 'event_date') }},
        null::integer as age,
        false as is_population,
        false as is_reference_month
    from events
    {{ commissioner_dimension_joins('events', 'event_date') }}
    where events.measure = 'chronic_acsc_admission'

    union all

    {{ registered_population_rows() }}
)

select
    {{ commissioner_breakdown_columns() }},
    {{ registered_population_count() }} as registered_population,
    count(*) filter (where not is_population) as chronic_acsc_admissions
from counted
{{ commissioner_group_by() }}
