{#
  The segments every indicator is broken down by, one row per person, as at the end of
  the extract window:
  * Core20PLUS5: living in the most deprived 20% of areas (IMD deciles 1 and 2);
  * frailty: the Hospital Frailty Risk Score (Gilbert et al., Lancet 2018) over the
    diagnoses, in any position, of admissions in the two years to the window's end:
    each distinct ICD-10 category in ref_hfrs_icd10 counted once;
  * multimorbidity: the number of distinct long-term conditions (ref_long_term_conditions_snomed)
    ever coded by the person's GP practice up to the window's end.
#}
with

people as (
    select * from {{ ref('int_persons_demographics_resolved') }}
),

diagnoses as (
    select * from {{ ref('int_hospital_episode_diagnoses_unnested') }}
),

gp_events as (
    select * from {{ ref('stg_gp__events') }}
),

record_persons as (
    select * from {{ ref('stg_linkage__record_persons') }}
),

extract_window as (
    select * from {{ ref('int_extract_window_derived') }}
),

hfrs as (
    select * from {{ ref('ref_hfrs_icd10') }}
),

conditions as (
    select * from {{ ref('ref_long_term_conditions_snomed') }}
),

frailty_categories as (
    select distinct
        diagnoses.person_id,
        hfrs.icd10_3char,
        hfrs.points
    from diagnoses
    cross join extract_window
    inner join hfrs
        on diagnoses.icd10_3char = hfrs.icd10_3char
    where diagnoses.admission_date <= extract_window.extract_end_date
        and diagnoses.admission_date > extract_window.extract_end_date - interval 2 year
),

frailty as (
    select
        person_id,
        round(sum(points), 1) as hfrs_score
    from frailty_categories
    group by person_id
),

long_term_conditions as (
    select
        record_persons.person_id,
        count(distinct conditions.condition) as long_term_condition_count
    from gp_events
    cross join extract_window
    inner join conditions
        on gp_events.snomed_code = conditions.snomed_code
    inner join record_persons
        on gp_events.record_token = record_persons.record_token
    where gp_events.event_date <= extract_window.extract_end_date
    group by record_persons.person_id
),

segmented as (
    select
        people.person_id,
        people.imd_decile,
        coalesce(people.imd_decile <= 2, false) as is_core20,
        coalesce(frailty.hfrs_score, 0) as hfrs_score,
        case
            when coalesce(frailty.hfrs_score, 0) < 5 then 'low'
            when frailty.hfrs_score <= 15 then 'intermediate'
            else 'high'
        end as frailty_risk,
        coalesce(long_term_conditions.long_term_condition_count, 0) as long_term_condition_count,
        case
            when coalesce(long_term_conditions.long_term_condition_count, 0) >= 3 then '3+'
            else cast(coalesce(long_term_conditions.long_term_condition_count, 0) as varchar)
        end as long_term_conditions_band
    from people
    left join frailty
        on people.person_id = frailty.person_id
    left join long_term_conditions
        on people.person_id = long_term_conditions.person_id
)

select * from segmented
