{#
  The events the national indicators count, one row per event and measure, before any
  aggregation (int_bcf_metrics_aggregated and int_acsc_admissions_aggregated count them).

  * Admissions are continuous stays (int_hospital_spells_chained): a transfer between
    hospitals is one admission, counted at its first spell's admission method, date and
    primary diagnosis. HES-based national figures count spells, so there an emergency
    transfer (2B) counts a second time.
  * emergency_admission_65_and_over (BCF): an emergency admission method (2x), aged 65
    or over on the day of admission; someone turning 65 during the period counts from
    their 65th birthday on.
  * chronic_acsc_admission (NHS Outcomes Framework 2.3.i): an emergency admission whose
    first episode's primary diagnosis is on the chronic ACSC list (ref_acsc_icd10), any
    age.
  * adult_discharge (BCF discharge delays): a stay's end, alive, aged 18 or over on the
    day of discharge. Its discharge ready date (DRD) is the last episode's, and is taken
    as recorded only from the admission date to the discharge date: a DRD after the
    discharge is a recording error and counts as no DRD. Delay = discharge date - DRD.
  * care_home_admission_65_and_over (BCF): a person's first long-term residential or
    nursing care service (CLD service type 'Long Term Support: Residential Care' or
    'Long Term Support: Nursing Care'; a delivery without CLD's fields by its service
    group), counted when it starts in the period and they are 65 or over that day. A
    person already in a care home before the period is not admitted again by a move.
  Every measure counts events inside the extract window.
#}
with

spells as (
    select * from {{ ref('int_hospital_spells_chained') }}
),

social_care_events as (
    select * from {{ ref('stg_social_care__events') }}
),

service_types as (
    select * from {{ ref('ref_social_care_service_types') }}
),

record_persons as (
    select * from {{ ref('stg_linkage__record_persons') }}
),

people as (
    select * from {{ ref('int_persons_demographics_resolved') }}
),

extract_window as (
    select * from {{ ref('int_extract_window_derived') }}
),

admissions as (
    select
        spells.person_id,
        spells.admission_date as event_date,
        spells.admission_type,
        spells.acsc_group,
        {{ age_in_years('people.birth_month', 'spells.admission_date') }} as age
    from spells
    inner join people
        on spells.person_id = people.person_id
    where spells.spell_number_in_stay = 1
),

discharges as (
    select
        spells.person_id,
        spells.discharge_date as event_date,
        case
            when spells.discharge_ready_date between spells.admission_date and spells.discharge_date
                then spells.discharge_ready_date
        end as discharge_ready_date,
        {{ age_in_years('people.birth_month', 'spells.discharge_date') }} as age
    from spells
    inner join people
        on spells.person_id = people.person_id
    where spells.spell_number_in_stay = spells.spells_in_stay
        and not spells.is_open
        and not spells.died_in_hospital
),

care_home_services as (
    select
        record_persons.person_id,
        min(social_care_events.event_start_date) as event_date
    from social_care_events
    inner join record_persons
        on social_care_events.record_token = record_persons.record_token
    left join service_types
        on social_care_events.service_type = service_types.service_type
    where social_care_events.event_type = 'service'
        and coalesce(
            social_care_events.cld_service_type in (
                'Long Term Support: Residential Care', 'Long Term Support: Nursing Care'
            ),
            service_types.service_group = 'long_term_residential'
        )
    group by record_persons.person_id
),

care_home_admissions as (
    select
        care_home_services.person_id,
        care_home_services.event_date,
        {{ age_in_years('people.birth_month', 'care_home_services.event_date') }} as age
    from care_home_services
    inner join people
        on care_home_services.person_id = people.person_id
),

selected as (
    select 'emergency_admission_65_and_over' as measure, person_id, event_date,
        null::date as discharge_ready_date
    from admissions
    where admission_type = 'emergency' and age >= 65

    union all

    select 'chronic_acsc_admission', person_id, event_date, null
    from admissions
    where admission_type = 'emergency' and acsc_group = 'chronic'

    union all

    select 'adult_discharge', person_id, event_date, discharge_ready_date
    from discharges
    where age >= 18

    union all

    select 'care_home_admission_65_and_over', person_id, event_date, null
    from care_home_admissions
    where age >= 65
)

select
    selected.measure,
    selected.person_id,
    selected.event_date,
    selected.discharge_ready_date,
    selected.discharge_ready_date is not null as has_discharge_ready_date,
    selected.event_date - selected.discharge_ready_date as discharge_delay_days
from selected
cross join extract_window
where selected.event_date between extract_window.extract_start_date
    and extract_window.extract_end_date
