{#
  One set of demographics per linked person from the records of all three sources.

  Rule, per attribute: the GP record first, then the most recently active other record.
  GP registration data are the most complete and are kept current by the patient
  list; among a person's GP records the current registration (not deregistered, latest
  registration date) comes first. Hospital and social care records then rank by their
  latest activity date, as the latest contact carries the newest address and any
  correction. Each attribute takes the first ranked record where it is known, so a
  missing value on the GP record is filled from elsewhere. Sex code 0 counts as not
  known. The area attributes (LSOA, IMD decile, residence LA) always come together
  from one record so they stay consistent. The practice is the top-ranked GP record's.
  A birth month after the end of the extract is a recording error (a mistyped year)
  and is passed over for the next record's.
#}
with

record_persons as (
    select * from {{ ref('stg_linkage__record_persons') }}
),

gp_patients as (
    select * from {{ ref('stg_gp__patients') }}
),

hospital_patients as (
    select * from {{ ref('stg_hospital__patients') }}
),

social_care_clients as (
    select * from {{ ref('stg_social_care__clients') }}
),

hospital_activity as (
    select record_token, max(coalesce(discharge_date, admission_date)) as last_activity_date
    from {{ ref('stg_hospital__apc_episodes') }}
    group by record_token
    union all
    select record_token, max(coalesce(departure_date, arrival_date))
    from {{ ref('stg_hospital__ae_attendances') }}
    group by record_token
),

extract_window as (
    select * from {{ ref('int_extract_window_derived') }}
),

social_care_activity as (
    select record_token, max(coalesce(event_end_date, event_start_date)) as last_activity_date
    from {{ ref('stg_social_care__events') }}
    group by record_token
),

records as (
    select
        'gp' as record_source,
        record_token,
        sex_code,
        birth_month,
        lsoa_code,
        imd_decile,
        residence_la_code,
        practice_code,
        -- Current registration first, then the latest registration.
        1 as source_rank,
        deregistration_date is not null as is_deregistered,
        registration_date as recency_date
    from gp_patients

    union all

    select
        'hospital',
        hospital_patients.record_token,
        sex_code,
        birth_month,
        lsoa_code,
        imd_decile,
        residence_la_code,
        null,
        2,
        false,
        max(hospital_activity.last_activity_date)
    from hospital_patients
    left join hospital_activity
        on hospital_patients.record_token = hospital_activity.record_token
    group by all

    union all

    select
        'social_care',
        social_care_clients.record_token,
        sex_code,
        birth_month,
        lsoa_code,
        imd_decile,
        residence_la_code,
        null,
        2,
        false,
        social_care_activity.last_activity_date
    from social_care_clients
    left join social_care_activity
        on social_care_clients.record_token = social_care_activity.record_token
),

ranked as (
    select
        record_persons.person_id,
        records.*,
        row_number() over (
            partition by record_persons.person_id
            order by
                records.source_rank,
                records.is_deregistered,
                records.recency_date desc nulls last,
                records.record_token
        ) as record_rank
    from records
    inner join record_persons
        on records.record_token = record_persons.record_token
),

plausible as (
    select
        ranked.* replace (
            case
                when ranked.birth_month <= strftime(extract_window.extract_end_date, '%Y-%m')
                    then ranked.birth_month
            end as birth_month
        )
    from ranked
    cross join extract_window
),

resolved as (
    select
        person_id,
        arg_min(sex_code, record_rank) filter (where sex_code <> '0') as sex_code,
        arg_min(record_source, record_rank) filter (where sex_code <> '0') as sex_source,
        arg_min(birth_month, record_rank) filter (where birth_month is not null) as birth_month,
        arg_min(record_source, record_rank) filter (where birth_month is not null)
            as birth_month_source,
        arg_min(lsoa_code, record_rank) filter (where lsoa_code is not null) as lsoa_code,
        arg_min(imd_decile, record_rank) filter (where lsoa_code is not null) as imd_decile,
        arg_min(residence_la_code, record_rank) filter (where lsoa_code is not null)
            as la_code,
        arg_min(record_source, record_rank) filter (where lsoa_code is not null)
            as area_source,
        arg_min(practice_code, record_rank) filter (where practice_code is not null)
            as practice_code,
        count(*) filter (where record_source = 'gp') as gp_record_count,
        count(*) filter (where record_source = 'hospital') as hospital_record_count,
        count(*) filter (where record_source = 'social_care') as social_care_record_count
    from plausible
    group by person_id
)

select
    person_id,
    coalesce(sex_code, '0') as sex_code,
    sex_source,
    birth_month,
    birth_month_source,
    lsoa_code,
    imd_decile,
    la_code,
    area_source,
    practice_code,
    gp_record_count,
    hospital_record_count,
    social_care_record_count
from resolved
