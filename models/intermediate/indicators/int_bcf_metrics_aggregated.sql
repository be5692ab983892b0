{#
  The Better Care Fund 2025-26 metrics counted for commissioners, before disclosure
  control (mart_bcf_metrics publishes them through suppress_small_numbers). Each event
  of int_indicator_events_selected is placed by its own date (admission, discharge,
  start of the care home service), and the registered population aged 65 and over
  (int_indicator_population_registered) is counted beside it in the same cells.
#}
with

{{ indicator_cell_imports() }}

counted as (
    {{ indicator_event_rows(
        ['emergency_admission_65_and_over', 'adult_discharge', 'care_home_admission_65_and_over'],
        ['measure', 'has_discharge_ready_date', 'discharge_delay_days'],
    ) }}
),

event_cells as (
    select
        {{ commissioner_breakdown_columns() }},
        {{ population_is_undefined() }} as population_is_undefined,
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
)

select
    {{ indicator_cell_keys() }},
    {{ population_denominator_source() }} as denominator_source,
    {{ population_cell('registered_population_65_and_over') }} as registered_population_65_and_over,
    {{ event_cell_count('emergency_admissions_65_and_over') }} as emergency_admissions_65_and_over,
    {{ event_cell_count('adult_discharges') }} as adult_discharges,
    {{ event_cell_count('discharges_with_ready_date') }} as discharges_with_ready_date,
    {{ event_cell_count('discharged_on_ready_date') }} as discharged_on_ready_date,
    {{ event_cell_count('delayed_discharges') }} as delayed_discharges,
    event_cells.mean_delay_days,
    event_cells.mean_delay_days_among_delayed,
    {{ event_cell_count('care_home_admissions_65_and_over') }} as care_home_admissions_65_and_over
{{ indicator_cells_joined() }}
