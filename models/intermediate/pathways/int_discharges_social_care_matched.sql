{#
  Each hospital discharge (a continuous stay ending with the patient alive) matched to
  the person's first social care request or service starting on the day of discharge
  or within var('social_care_window_days') (90) days after. Assessments are not a
  start of support (they follow a request), so they are not matched. Social care that
  began before the discharge is not counted: it did not follow it.
#}
{%- set window_days = var('social_care_window_days') | int -%}

with

stays as (
    select * from {{ ref('int_hospital_stays_readmissions_flagged') }}
),

events as (
    select * from {{ ref('int_care_events_unioned') }}
),

extract_window as (
    select * from {{ ref('int_extract_window_derived') }}
),

discharges as (
    select * from stays where not is_open and not died_in_hospital
),

social_care_starts as (
    select * from events
    where event_type in ('social_care_request', 'social_care_service')
),

first_social_care as (
    select
        discharges.stay_key,
        social_care_starts.event_key,
        social_care_starts.event_type,
        social_care_starts.event_start_date,
        social_care_starts.route_of_access,
        social_care_starts.event_detail as service_type,
        social_care_starts.org_code as la_code,
        date_diff('day', discharges.discharge_date, social_care_starts.event_start_date)
            as days_after
    from discharges
    inner join social_care_starts
        on discharges.person_id = social_care_starts.person_id
        and social_care_starts.event_start_date >= discharges.discharge_date
        and social_care_starts.event_start_date <= discharges.discharge_date + {{ window_days }}
    qualify row_number() over (
        partition by discharges.stay_key
        order by
            social_care_starts.event_start_date,
            social_care_starts.same_day_order,
            social_care_starts.event_key
    ) = 1
)

select
    discharges.stay_key,
    discharges.person_id,
    discharges.last_spell_key,
    discharges.discharge_provider_code,
    discharges.admission_type,
    discharges.admission_date,
    discharges.discharge_date,
    discharges.length_of_stay_days,
    discharges.discharge_destination,
    discharges.destination_group,
    discharges.is_discharged_to_care_home,
    discharges.discharge_date + {{ window_days }} <= extract_window.extract_end_date
        as has_full_follow_up,
    first_social_care.stay_key is not null as has_social_care_within_window,
    first_social_care.event_key as first_social_care_event_key,
    first_social_care.event_type as first_social_care_event_type,
    first_social_care.event_start_date as first_social_care_date,
    first_social_care.days_after as days_to_social_care,
    first_social_care.route_of_access as first_social_care_route_of_access,
    first_social_care.service_type as first_social_care_service_type,
    first_social_care.la_code as social_care_la_code
from discharges
cross join extract_window
left join first_social_care
    on discharges.stay_key = first_social_care.stay_key
