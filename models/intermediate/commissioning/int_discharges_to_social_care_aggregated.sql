{#
  Discharges followed by social care, counted for commissioners before disclosure
  control (mart_discharge_to_social_care publishes these). Adults only (18 and over at
  discharge): these are adult social care extracts. Counts discharges with the full
  follow-up window inside the extract, by month of discharge, place, age, sex and IMD.
#}
with

discharges as (
    select * from {{ ref('int_discharges_social_care_matched') }}
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

adult_discharges as (
    select
        {{ commissioner_dimension_columns('discharges', 'discharge_date') }},
        discharges.has_social_care_within_window,
        discharges.days_to_social_care
    from discharges
    {{ commissioner_dimension_joins('discharges', 'discharge_date') }}
    where discharges.has_full_follow_up
        and discharges.discharge_date >= extract_window.extract_start_date
        and {{ age_in_years('people.birth_month', 'discharges.discharge_date') }} >= 18
)

select
    {{ commissioner_breakdown_columns() }},
    count(*) as discharges,
    count(*) filter (where has_social_care_within_window) as discharges_to_social_care,
    count(*) filter (where days_to_social_care <= 7) as discharges_to_social_care_within_7_days,
    median(days_to_social_care) as median_days_to_social_care
from adult_discharges
{{ commissioner_group_by() }}
