{#
  Emergency readmissions within 30 days of discharge as NHS Digital's compendium
  indicator defines it (I02040; NHS Outcomes Framework 3b; CCG OIS 3.2), one row per
  finished continuous inpatient (CIP) spell discharged inside the extract window, with
  whether it is an index spell (the denominator) and, if so, whether it was readmitted
  (the numerator). The sources and what is not implemented are in the model's .yml.

  * CIP spells are the continuous stays of int_hospital_spells_chained: a transfer
    between hospitals is inside a stay, never a readmission.
  * Index: finished, the patient alive (discharge method 4 or destination 79 excluded),
    no cancer (ICD-10 C00-C97, D37-D48) or chemotherapy for cancer (Z51.1) in any
    diagnosis position of any episode of the stay, no obstetrics (main specialty 501 or
    560 on any episode, or a maternity admission method 31/32), not a regular day or
    night attender (patient classification 3 or 4), and the whole 30-day follow-up
    inside the extract.
  * Readmitted: the person's next stay (the spell whose "last, previous discharge" this
    one is) is an emergency admission (method 2x) from 0 to 29 days after the discharge,
    the day of discharge being day 0, and is itself no cancer or obstetric stay. A death
    in the readmission counts. Day 29 counts, day 30 does not: the compendium's window
    (mart_readmissions' local 0-30 day rule is var readmission_window_days).
  * Strata for indirect standardisation: the index spell's admission method group and
    ICD-10 chapter of its primary diagnosis; age band and sex come with the commissioner
    dimensions in int_readmissions_30_day_aggregated.
#}
{%- set last_day = 29 -%}

with

{{ import_ctes({
    'spells': ref('int_hospital_spells_chained'),
    'diagnoses': ref('int_hospital_episode_diagnoses_unnested'),
    'episodes': ref('stg_hospital__apc_episodes'),
    'exclusions': ref('ref_readmission_exclusions'),
    'chapters': ref('ref_icd10_chapters'),
    'extract_window': ref('int_extract_window_derived'),
}) }}

-- A code is excluded when its first characters (as many as the seed's codes have) fall
-- in one of the seed's ranges for its field.
spell_cancer as (
    select diagnoses.spell_key, true as has_cancer
    from diagnoses
    inner join exclusions
        on exclusions.field = 'diagnosis'
        and left(diagnoses.diagnosis_code, length(exclusions.first_code))
            between exclusions.first_code and exclusions.last_code
    group by diagnoses.spell_key
),

spell_obstetric as (
    select {{ surrogate_key(['episodes.spell_token']) }} as spell_key, true as has_obstetric_specialty
    from episodes
    inner join exclusions
        on exclusions.field = 'main_specialty'
        and episodes.main_specialty between exclusions.first_code and exclusions.last_code
    group by episodes.spell_token
),

flagged_spells as (
    select
        spells.*,
        coalesce(spell_cancer.has_cancer, false) as has_cancer,
        coalesce(spell_obstetric.has_obstetric_specialty, false)
            or maternity.exclusion is not null as is_obstetric,
        attenders.exclusion is not null as is_regular_attender
    from spells
    left join spell_cancer
        on spells.spell_key = spell_cancer.spell_key
    left join spell_obstetric
        on spells.spell_key = spell_obstetric.spell_key
    left join exclusions as maternity
        on maternity.field = 'admission_method'
        and spells.admission_method between maternity.first_code and maternity.last_code
    left join exclusions as attenders
        on attenders.field = 'patient_classification'
        and spells.patient_classification between attenders.first_code and attenders.last_code
),

stays as (
    select
        stay_key,
        person_id,
        stay_sequence,
        any_value(admission_type) filter (where spell_number_in_stay = 1) as admission_type,
        any_value(primary_diagnosis) filter (where spell_number_in_stay = 1) as primary_diagnosis,
        bool_or(is_regular_attender) filter (where spell_number_in_stay = 1) as is_regular_attender,
        min(admission_date) as admission_date,
        any_value(discharge_date) filter (where spell_number_in_stay = spells_in_stay)
            as discharge_date,
        bool_or(is_open or discharge_date is null) as is_open,
        coalesce(bool_or(died_in_hospital or discharge_method = '4')
            filter (where spell_number_in_stay = spells_in_stay), false) as died,
        bool_or(has_cancer) as has_cancer,
        bool_or(is_obstetric) as is_obstetric
    from flagged_spells
    group by stay_key, person_id, stay_sequence
),

followed as (
    select
        stays.*,
        lead(stays.admission_date) over next_stay - stays.discharge_date
            as days_to_next_admission,
        lead(stays.admission_type) over next_stay as next_admission_type,
        lead(stays.has_cancer or stays.is_obstetric) over next_stay as is_next_excluded
    from stays
    window next_stay as (partition by stays.person_id order by stays.stay_sequence)
),

classified as (
    select
        followed.*,
        case
            when followed.died then 'died'
            when followed.has_cancer then 'cancer'
            when followed.is_obstetric then 'obstetrics'
            when followed.is_regular_attender then 'regular_attender'
            when followed.discharge_date + {{ last_day }} > extract_window.extract_end_date
                then 'follow_up_incomplete'
        end as exclusion
    from followed
    cross join extract_window
    where not followed.is_open
        and followed.discharge_date between extract_window.extract_start_date
            and extract_window.extract_end_date
)

select
    stay_key,
    person_id,
    admission_date,
    discharge_date,
    case
        when admission_type in ('emergency', 'elective') then admission_type
        else 'other'
    end as admission_group,
    coalesce(chapters.chapter, 'unknown') as diagnosis_group,
    exclusion,
    exclusion is null as is_index,
    days_to_next_admission,
    next_admission_type,
    case
        when exclusion is null then coalesce(
            next_admission_type = 'emergency'
            and not is_next_excluded
            and days_to_next_admission between 0 and {{ last_day }},
            false
        )
    end as is_readmitted
from classified
left join chapters
    on left(classified.primary_diagnosis, 3) between chapters.first_code and chapters.last_code
