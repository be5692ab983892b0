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

{{ import_ctes({
    'spells': ref('int_hospital_spells_chained'),
    'social_care_events': ref('stg_social_care__events'),
    'service_types': ref('ref_social_care_service_types'),
    'record_persons': ref('stg_linkage__record_persons'),
    'people': ref('int_persons_demographics_resolved'),
    'extract_window': ref('int_extract_window_derived'),
}) }}

care_home_services as (
    select
        record_persons.person_id,
        min(social_care_events.event_start_date) as event_date
    from social_care_events
    inner join record_persons using (record_token)
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

-- Every candidate event once, so that age is taken in one place.
candidates as (
    select
        'admission' as kind, person_id, admission_date as event_date, admission_type,
        acsc_group, null::date as discharge_ready_date
    from spells
    where spell_number_in_stay = 1

    union all

    select
        'discharge', person_id, discharge_date, null, null,
        case
            when discharge_ready_date between admission_date and discharge_date
                then discharge_ready_date
        end
    from spells
    where spell_number_in_stay = spells_in_stay and not is_open and not died_in_hospital

    union all

    select 'care_home', person_id, event_date, null, null, null
    from care_home_services
),

aged as (
    select candidates.*, {{ age_in_years('people.birth_month', 'candidates.event_date') }} as age
    from candidates
    inner join people using (person_id)
),

selected as (
    select 'emergency_admission_65_and_over' as measure, person_id, event_date,
        discharge_ready_date
    from aged
    where kind = 'admission' and admission_type = 'emergency' and age >= 65

    union all

    select 'chronic_acsc_admission', person_id, event_date, discharge_ready_date
    from aged
    where kind = 'admission' and admission_type = 'emergency' and acsc_group = 'chronic'

    union all

    select 'adult_discharge', person_id, event_date, discharge_ready_date
    from aged
    where kind = 'discharge' and age >= 18

    union all

    select 'care_home_admission_65_and_over', person_id, event_date, discharge_ready_date
    from aged
    where kind = 'care_home' and age >= 65
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
