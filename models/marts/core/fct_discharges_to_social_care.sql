with

discharges as (
    select * from {{ ref('int_discharges_social_care_matched') }}
),

people as (
    select * from {{ ref('int_persons_demographics_resolved') }}
),

age_bands as (
    select * from {{ ref('ref_age_bands') }}
),

aged as (
    select
        discharges.*,
        {{ age_in_years('people.birth_month', 'discharges.discharge_date') }} as age_at_discharge
    from discharges
    inner join people
        on discharges.person_id = people.person_id
)

select
    aged.stay_key,
    aged.person_id,
    aged.last_spell_key,
    aged.discharge_provider_code,
    aged.admission_type,
    aged.admission_date,
    aged.discharge_date,
    aged.length_of_stay_days,
    aged.discharge_destination,
    aged.destination_group,
    aged.is_discharged_to_care_home,
    {{ coarsened('age_at_discharge', 'aged.age_at_discharge') }} as age_at_discharge,
    age_bands.age_band,
    aged.has_full_follow_up,
    aged.has_social_care_within_window,
    aged.first_social_care_event_key,
    aged.first_social_care_event_type,
    aged.first_social_care_date,
    aged.days_to_social_care,
    aged.first_social_care_route_of_access,
    aged.first_social_care_service_type,
    aged.social_care_la_code
from aged
left join age_bands
    on aged.age_at_discharge between age_bands.min_age and age_bands.max_age
