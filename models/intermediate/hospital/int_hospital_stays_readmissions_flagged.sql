{#
  Continuous hospital stays with the NHS 30-day emergency readmission rule applied.

  * Index: a stay that has ended with the patient discharged alive. Stays ending in
    death (79) and stays still open are never index stays; a transfer is inside a stay,
    so the index discharge is the stay's last one.
  * Readmission: a later stay of the same person admitted as an emergency from 0 to
    var('readmission_window_days') (30) days after the index discharge, the day of
    discharge being day 0: day 30 counts, day 31 does not. Elective and other
    admissions never count as readmissions.
  * Follow-up: an index discharge within the window of the extract end cannot yet show
    all of its readmissions; has_full_follow_up says which can, and published rates use
    only those.
#}
{%- set window_days = var('readmission_window_days') | int -%}

with

spells as (
    select * from {{ ref('int_hospital_spells_chained') }}
),

extract_window as (
    select * from {{ ref('int_extract_window_derived') }}
),

first_spells as (
    select * from spells where spell_number_in_stay = 1
),

last_spells as (
    select * from spells where spell_number_in_stay = spells_in_stay
),

stays as (
    select
        first_spells.stay_key,
        first_spells.person_id,
        first_spells.stay_sequence,
        first_spells.spell_key as first_spell_key,
        last_spells.spell_key as last_spell_key,
        first_spells.spells_in_stay as spell_count,
        first_spells.provider_code as admission_provider_code,
        last_spells.provider_code as discharge_provider_code,
        first_spells.admission_date,
        first_spells.admission_method,
        first_spells.admission_type,
        first_spells.primary_diagnosis,
        first_spells.is_acsc_emergency_admission,
        last_spells.discharge_date,
        last_spells.discharge_destination,
        last_spells.destination_group,
        last_spells.is_open,
        last_spells.died_in_hospital,
        last_spells.is_discharged_to_care_home,
        date_diff('day', first_spells.admission_date, last_spells.discharge_date)
            as length_of_stay_days,
        not last_spells.is_open and not last_spells.died_in_hospital as is_readmission_index
    from first_spells
    inner join last_spells
        on first_spells.stay_key = last_spells.stay_key
),

readmission_pairs as (
    select
        index_stays.stay_key as index_stay_key,
        later_stays.stay_key as readmission_stay_key,
        later_stays.stay_sequence as readmission_stay_sequence,
        date_diff('day', index_stays.discharge_date, later_stays.admission_date) as days_after
    from stays as index_stays
    inner join stays as later_stays
        on index_stays.person_id = later_stays.person_id
        and later_stays.stay_sequence > index_stays.stay_sequence
        and later_stays.admission_type = 'emergency'
        and later_stays.admission_date >= index_stays.discharge_date
        and later_stays.admission_date <= index_stays.discharge_date + {{ window_days }}
    where index_stays.is_readmission_index
),

first_readmissions as (
    select
        index_stay_key,
        readmission_stay_key,
        days_after
    from readmission_pairs
    qualify row_number() over (
        partition by index_stay_key order by days_after, readmission_stay_sequence
    ) = 1
),

readmitted_stays as (
    select
        readmission_stay_key,
        min(days_after) as days_since_previous_discharge
    from readmission_pairs
    group by readmission_stay_key
)

select
    stays.*,
    case
        when stays.is_readmission_index
            then stays.discharge_date + {{ window_days }} <= extract_window.extract_end_date
    end as has_full_follow_up,
    case
        when stays.is_readmission_index then first_readmissions.index_stay_key is not null
    end as readmitted_within_30_days,
    first_readmissions.days_after as days_to_emergency_readmission,
    first_readmissions.readmission_stay_key,
    readmitted_stays.readmission_stay_key is not null as is_emergency_readmission,
    readmitted_stays.days_since_previous_discharge
from stays
cross join extract_window
left join first_readmissions
    on stays.stay_key = first_readmissions.index_stay_key
left join readmitted_stays
    on stays.stay_key = readmitted_stays.readmission_stay_key
