{#
  Hospital provider spells from consultant episodes. A spell's admission (date, method,
  source, primary diagnosis) is its first episode's, as in HES; its discharge date and
  destination exist only on its last episode, so a spell whose last episode has no
  discharge date is still open, whatever an earlier episode says. Episodes of records
  that linkage did not place with a person are left out.
#}
with

episodes as (
    select * from {{ ref('stg_hospital__apc_episodes') }}
),

record_persons as (
    select * from {{ ref('stg_linkage__record_persons') }}
),

admission_methods as (
    select * from {{ ref('ref_admission_methods') }}
),

admission_sources as (
    select * from {{ ref('ref_admission_sources') }}
),

discharge_destinations as (
    select * from {{ ref('ref_discharge_destinations') }}
),

acsc as (
    select * from {{ ref('ref_acsc_icd10') }}
),

episode_counts as (
    select
        spell_token,
        count(*) as episode_count,
        min(episode_number) as first_episode_number,
        max(episode_number) as last_episode_number
    from episodes
    group by spell_token
),

first_episodes as (
    select episodes.*
    from episodes
    inner join episode_counts
        on episodes.spell_token = episode_counts.spell_token
        and episodes.episode_number = episode_counts.first_episode_number
),

last_episodes as (
    select episodes.*
    from episodes
    inner join episode_counts
        on episodes.spell_token = episode_counts.spell_token
        and episodes.episode_number = episode_counts.last_episode_number
),

spells as (
    select
        {{ surrogate_key(['first_episodes.spell_token']) }} as spell_key,
        record_persons.person_id,
        first_episodes.provider_code,
        first_episodes.admission_date,
        last_episodes.discharge_date,
        last_episodes.discharge_date is null as is_open,
        date_diff('day', first_episodes.admission_date, last_episodes.discharge_date)
            as length_of_stay_days,
        episode_counts.episode_count,
        first_episodes.admission_method,
        coalesce(admission_methods.admission_type, 'other') as admission_type,
        first_episodes.admission_source,
        coalesce(admission_sources.is_hospital_transfer, false) as is_admitted_by_transfer,
        -- A destination without a discharge date cannot be believed: the spell is open.
        case
            when last_episodes.discharge_date is not null
                then last_episodes.discharge_destination
        end as discharge_destination,
        case
            when last_episodes.discharge_date is not null
                then coalesce(discharge_destinations.destination_group, 'unknown')
        end as destination_group,
        last_episodes.discharge_date is not null
            and coalesce(discharge_destinations.is_death, false) as died_in_hospital,
        last_episodes.discharge_date is not null
            and coalesce(discharge_destinations.is_hospital_transfer, false)
            as is_discharged_by_transfer,
        last_episodes.discharge_date is not null
            and coalesce(discharge_destinations.is_care_home, false)
            as is_discharged_to_care_home,
        first_episodes.primary_diagnosis,
        first_episodes.primary_procedure,
        first_episodes.secondary_diagnoses,
        first_episodes.patient_classification,
        -- Like the destination, the discharge's own fields are on the last episode only.
        case
            when last_episodes.discharge_date is not null then last_episodes.discharge_method
        end as discharge_method,
        last_episodes.discharge_ready_date,
        acsc.condition as acsc_condition,
        acsc.acsc_group,
        coalesce(admission_methods.admission_type = 'emergency' and acsc.icd10_3char is not null, false)
            as is_acsc_emergency_admission
    from first_episodes
    inner join episode_counts
        on first_episodes.spell_token = episode_counts.spell_token
    inner join last_episodes
        on first_episodes.spell_token = last_episodes.spell_token
    inner join record_persons
        on first_episodes.record_token = record_persons.record_token
    left join admission_methods
        on first_episodes.admission_method = admission_methods.admission_method
    left join admission_sources
        on first_episodes.admission_source = admission_sources.admission_source
    left join discharge_destinations
        on last_episodes.discharge_destination = discharge_destinations.discharge_destination
    left join acsc
        on left(first_episodes.primary_diagnosis, 3) = acsc.icd10_3char
)

select * from spells
