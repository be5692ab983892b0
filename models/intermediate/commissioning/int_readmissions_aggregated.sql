{#
  30-day emergency readmissions counted for commissioners, before disclosure control
  (mart_readmissions publishes these through suppress_small_numbers). Counts index
  discharges with a full 30 days of follow-up inside the extract, by the month of
  discharge and the person's place, age at discharge, sex and IMD quintile.
#}
with

stays as (
    select * from {{ ref('int_hospital_stays_readmissions_flagged') }}
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

index_discharges as (
    select
        {{ commissioner_dimension_columns('stays', 'discharge_date') }},
        stays.readmitted_within_30_days
    from stays
    {{ commissioner_dimension_joins('stays', 'discharge_date') }}
    where stays.is_readmission_index
        and stays.has_full_follow_up
        and stays.discharge_date >= extract_window.extract_start_date
)

select
    {{ commissioner_breakdown_columns() }},
    count(*) as index_discharges,
    count(*) filter (where readmitted_within_30_days) as emergency_readmissions
from index_discharges
{{ commissioner_group_by() }}
