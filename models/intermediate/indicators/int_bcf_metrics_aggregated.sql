{#
  The Better Care Fund 2025-26 metrics counted for commissioners, before disclosure
  control (mart_bcf_metrics publishes them through suppress_small_numbers). Each event
  of int_indicator_events_selected is placed by its own date (admission, discharge,
  start of the care home service), and the registered population aged 65 and over
  (int_indicator_population_registered) is counted beside it in the same cells.
#}
with

{{ indicator_imports() }}

counted as (
    {{ indicator_rows(
        ['emergency_admission_65_and_over', 'adult_discharge', 'care_home_admission_65_and_over'],
        ['measure', 'has_discharge_ready_date', 'discharge_delay_days'],
    ) }}
)

select
    {{ commissioner_breakdown_columns() }},
    {{ population_denominator_source() }} as denominator_source,
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
