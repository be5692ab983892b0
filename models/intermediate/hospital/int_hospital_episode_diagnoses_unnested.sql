{#
  Every diagnosis position of every episode, one row each: the primary (position 1) and
  the secondary positions the national layout delivers (HES diag_4_02 ... diag_4_20),
  so that a measure over "any diagnosis" (frailty scores, long-term conditions) reads one
  column. A generic delivery has the primary only. Placed with a person as spells are.
#}
with

episodes as (
    select * from {{ ref('stg_hospital__apc_episodes') }}
),

record_persons as (
    select * from {{ ref('stg_linkage__record_persons') }}
),

secondary as (
    select
        spell_token,
        episode_number,
        string_split(secondary_diagnoses, '; ') as codes
    from episodes
    where secondary_diagnoses is not null
),

positions as (
    select
        episodes.record_token,
        episodes.spell_token,
        episodes.episode_number,
        episodes.admission_date,
        1 as diagnosis_position,
        episodes.primary_diagnosis as diagnosis_code
    from episodes
    where episodes.primary_diagnosis is not null

    union all

    -- Two unnests in one select advance together: each code beside its position.
    select
        episodes.record_token,
        secondary.spell_token,
        secondary.episode_number,
        episodes.admission_date,
        unnest(range(2, len(secondary.codes) + 2)) as diagnosis_position,
        unnest(secondary.codes) as diagnosis_code
    from secondary
    inner join episodes
        on secondary.spell_token = episodes.spell_token
        and secondary.episode_number = episodes.episode_number
)

select
    {{ surrogate_key(['positions.spell_token']) }} as spell_key,
    record_persons.person_id,
    positions.episode_number,
    positions.admission_date,
    positions.diagnosis_position,
    positions.diagnosis_code,
    left(positions.diagnosis_code, 3) as icd10_3char
from positions
inner join record_persons
    on positions.record_token = record_persons.record_token
