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
        cast(date_trunc('month', stays.discharge_date) as date) as activity_month,
        people.la_code,
        people.practice_code,
        age_bands.age_band,
        sexes.sex,
        {{ imd_quintile('people.imd_decile') }} as imd_quintile,
        stays.readmitted_within_30_days
    from stays
    inner join people
        on stays.person_id = people.person_id
    cross join extract_window
    left join sexes
        on people.sex_code = sexes.sex_code
    left join age_bands
        on {{ age_in_years('people.birth_month', 'stays.discharge_date') }}
            between age_bands.min_age and age_bands.max_age
    where stays.is_readmission_index
        and stays.has_full_follow_up
        and stays.discharge_date >= extract_window.extract_start_date
)

select
    {{ commissioner_breakdown_label() }} as breakdown,
    activity_month,
    la_code,
    practice_code,
    age_band,
    sex,
    imd_quintile,
    count(*) as index_discharges,
    count(*) filter (where readmitted_within_30_days) as emergency_readmissions
from index_discharges
{{ commissioner_group_by() }}
