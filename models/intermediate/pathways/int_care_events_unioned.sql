{#
  Every person's care events across settings, as one timeline.

  * GP consultations: GP entries coded with a consultation concept (seed
    ref_gp_consultation_codes); diagnoses and administrative codes are not contacts.
  * A&E attendances.
  * Admissions and discharges of continuous hospital stays, so a transfer between
    hospitals is not a discharge and a readmission (the same rule as readmissions).
  * Social care requests, assessments and service starts.
  * Deaths, where a source records one: a stay ending in death (79) or an A&E
    attendance with disposal "died". A stay ending in death has a death event instead
    of a discharge. The extracts carry no date of death otherwise (no mortality feed),
    so deaths at home are not on the timeline.

  Events of records that linkage did not place with a person are left out. Where
  sources record more than one death for a person, the first stands.

  Incremental by person (macros/incremental_by_person.sql).
#}
{{ config(**incremental_by_person()) }}
-- depends_on: {{ ref('int_person_input_changes') }}

with

record_persons as (
    select * from {{ ref('stg_linkage__record_persons') }}
    {{ changed_persons_only('person_id') }}
),

gp_events as (
    select * from {{ ref('stg_gp__events') }}
),

consultation_codes as (
    select * from {{ ref('ref_gp_consultation_codes') }}
),

attendances as (
    select * from {{ ref('stg_hospital__ae_attendances') }}
),

disposals as (
    select * from {{ ref('ref_ae_disposals') }}
),

stays as (
    select * from {{ ref('int_hospital_stays_readmissions_flagged') }}
    {{ changed_persons_only('person_id') }}
),

social_care_events as (
    select * from {{ ref('stg_social_care__events') }}
),

event_types as (
    select * from {{ ref('ref_care_event_types') }}
),

gp_consultations as (
    select
        record_persons.person_id,
        'gp_consultation' as event_type,
        gp_events.event_date as event_start_date,
        gp_events.event_date as event_end_date,
        gp_events.practice_code as org_code,
        gp_events.snomed_code as event_detail,
        cast(null as varchar) as route_of_access,
        cast(null as varchar) as stay_key,
        {{ surrogate_key(['gp_events.record_token', 'gp_events.event_date', 'gp_events.snomed_code']) }}
            as source_key
    from gp_events
    inner join consultation_codes
        on gp_events.snomed_code = consultation_codes.snomed_code
    inner join record_persons
        on gp_events.record_token = record_persons.record_token
),

ae_attendances as (
    select
        record_persons.person_id,
        'ae_attendance' as event_type,
        attendances.arrival_date as event_start_date,
        coalesce(attendances.departure_date, attendances.arrival_date) as event_end_date,
        attendances.provider_code as org_code,
        attendances.disposal as event_detail,
        cast(null as varchar) as route_of_access,
        cast(null as varchar) as stay_key,
        {{ surrogate_key(['attendances.attendance_token']) }} as source_key
    from attendances
    inner join record_persons
        on attendances.record_token = record_persons.record_token
),

ae_deaths as (
    select
        ae_attendances.person_id,
        'death' as event_type,
        ae_attendances.event_end_date as event_start_date,
        ae_attendances.event_end_date,
        ae_attendances.org_code,
        'ae_disposal_died' as event_detail,
        cast(null as varchar) as route_of_access,
        cast(null as varchar) as stay_key,
        ae_attendances.source_key
    from ae_attendances
    inner join disposals
        on ae_attendances.event_detail = disposals.disposal
    where disposals.is_death
),

admissions as (
    select
        person_id,
        admission_type || '_admission' as event_type,
        admission_date as event_start_date,
        discharge_date as event_end_date,
        admission_provider_code as org_code,
        primary_diagnosis as event_detail,
        cast(null as varchar) as route_of_access,
        stay_key,
        stay_key as source_key
    from stays
),

stay_ends as (
    select
        person_id,
        case when died_in_hospital then 'death' else 'hospital_discharge' end as event_type,
        discharge_date as event_start_date,
        discharge_date as event_end_date,
        discharge_provider_code as org_code,
        case
            when died_in_hospital then 'discharge_destination_79' else destination_group
        end as event_detail,
        cast(null as varchar) as route_of_access,
        stay_key,
        stay_key as source_key
    from stays
    where not is_open
),

social_care as (
    select
        record_persons.person_id,
        'social_care_' || social_care_events.event_type as event_type,
        social_care_events.event_start_date,
        -- A service runs until its end date (null while it continues); the rest are one day.
        case
            when social_care_events.event_type = 'service' then social_care_events.event_end_date
            else social_care_events.event_start_date
        end as event_end_date,
        social_care_events.la_code as org_code,
        social_care_events.service_type as event_detail,
        social_care_events.route_of_access,
        cast(null as varchar) as stay_key,
        {{ surrogate_key([
            'social_care_events.record_token', 'social_care_events.event_type',
            'social_care_events.event_start_date', 'social_care_events.service_type',
        ]) }} as source_key
    from social_care_events
    inner join record_persons
        on social_care_events.record_token = record_persons.record_token
),

unioned as (
    select * from gp_consultations
    union all
    select * from ae_attendances
    union all
    select * from ae_deaths
    union all
    select * from admissions
    union all
    select * from stay_ends
    union all
    select * from social_care
)

select
    {{ surrogate_key(['unioned.event_type', 'unioned.source_key']) }} as event_key,
    unioned.person_id,
    event_types.setting,
    unioned.event_type,
    unioned.event_start_date,
    -- Null for a stay still open or a service still running.
    unioned.event_end_date,
    unioned.org_code,
    unioned.event_detail,
    unioned.route_of_access,
    unioned.stay_key,
    event_types.same_day_order
from unioned
inner join event_types
    on unioned.event_type = event_types.event_type
-- A person dies once: where sources record more than one death, the first stands.
qualify
    unioned.event_type <> 'death'
    or row_number() over (
        partition by unioned.person_id, unioned.event_type
        order by unioned.event_start_date, unioned.source_key
    ) = 1
