-- Incremental by person (macros/incremental_by_person.sql).
{{ config(**incremental_by_person()) }}
-- depends_on: {{ ref('int_person_input_changes') }}

with

events as (
    select * from {{ ref('int_care_events_unioned') }}
    {{ changed_persons_only('person_id') }}
),

people as (
    select * from {{ ref('int_persons_demographics_resolved') }}
),

age_bands as (
    select * from {{ ref('ref_age_bands') }}
),

aged as (
    select
        events.*,
        {{ age_in_years('people.birth_month', 'events.event_start_date') }} as age_at_event
    from events
    inner join people
        on events.person_id = people.person_id
)

select
    aged.event_key,
    aged.person_id,
    aged.setting,
    aged.event_type,
    aged.event_start_date,
    aged.event_end_date,
    cast(date_trunc('month', aged.event_start_date) as date) as event_month,
    aged.org_code,
    aged.event_detail,
    aged.route_of_access,
    aged.stay_key,
    {{ coarsened('age_at_event', 'aged.age_at_event') }} as age_at_event,
    age_bands.age_band
from aged
left join age_bands
    on aged.age_at_event between age_bands.min_age and age_bands.max_age
