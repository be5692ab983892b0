{#
  The Better Care Fund 2025-26 metrics counted for commissioners, before disclosure
  control (mart_bcf_metrics publishes them through suppress_small_numbers). Each event
  of int_indicator_events_selected is placed by its own date (admission, discharge,
  start of the care home service), and the registered population aged 65 and over
  (int_indicator_population_registered) is counted beside it in the same cells.
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
        false as is_reference_month,
        events.measure,
        events.has_discharge_ready_date,
        events.discharge_delay_days
    from events
    {{ commissioner_dimension_joins('events', 'event_date') }}
    where events.measure in (
        'emergency_admission_65_and_over', 'adult_discharge', 'care_home_admission_65_and_over'
    )

    union all

    select *, null, null, null
    from ({{ registered_population_rows() }})
)

select
    {{ commissioner_breakdown_columns() }},
    {{ registered_population_count('age >= 65') }} as registered_population_65_and_over,
    count(*) filter (where measure = 'emergency_admission_65_and_over')
        as emergency_admissions_65_and_over,
    count(*) filter (where measure = 'adult_discharge') as adult_discharges,
    count(*) filter (where measure = 'adult_discharge' and has_discharge_ready_date)
        as discharges_with_ready_date,
    count(*) filter (where measure = 'adult_discharge' and discharge_delay_days = 0)
        as discharged_on_ready_date,
    count(*) filter (where measure = 'adult_discharge' and discharge_delay_days > 0)
        as delayed_discharges,
    round(avg(discharge_delay_days) filter (where measure = 'adult_discharge'), 2)
        as mean_delay_days,
    round(avg(discharge_delay_days) filter (where measure = 'adult_discharge'
        and discharge_delay_days > 0), 2) as mean_delay_days_among_delayed,
    count(*) filter (where measure = 'care_home_admission_65_and_over')
        as care_home_admissions_65_and_over
from counted
{{ commissioner_group_by() }}
