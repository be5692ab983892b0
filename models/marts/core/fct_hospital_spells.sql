{#
  Spells with their continuous stay and the stay-level readmission flags placed where
  they happen: the index columns on the spell that ends the stay (its discharge is the
  stay's), the readmission columns on the spell that begins a stay. Counting rows with
  is_readmission_index or is_emergency_readmission therefore counts stays, once each.
#}
with

spells as (
    select * from {{ ref('int_hospital_spells_chained') }}
),

stays as (
    select * from {{ ref('int_hospital_stays_readmissions_flagged') }}
),

people as (
    select * from {{ ref('int_persons_demographics_resolved') }}
),

age_bands as (
    select * from {{ ref('ref_age_bands') }}
),

joined as (
    select
        spells.*,
        spells.spell_number_in_stay = spells.spells_in_stay as is_stay_end,
        spells.spell_number_in_stay = 1 as is_stay_start,
        stays.is_readmission_index as stay_is_readmission_index,
        stays.has_full_follow_up as stay_has_full_follow_up,
        stays.readmitted_within_30_days as stay_readmitted_within_30_days,
        stays.days_to_emergency_readmission as stay_days_to_emergency_readmission,
        stays.readmission_stay_key as stay_readmission_stay_key,
        stays.is_emergency_readmission as stay_is_emergency_readmission,
        stays.days_since_previous_discharge as stay_days_since_previous_discharge,
        {{ age_in_years('people.birth_month', 'spells.admission_date') }} as age_at_admission
    from spells
    inner join stays
        on spells.stay_key = stays.stay_key
    inner join people
        on spells.person_id = people.person_id
)

select
    joined.spell_key,
    joined.stay_key,
    joined.person_id,
    joined.provider_code,
    joined.admission_date,
    joined.discharge_date,
    joined.is_open,
    joined.length_of_stay_days,
    joined.episode_count,
    joined.admission_method,
    joined.admission_type,
    joined.admission_source,
    joined.discharge_destination,
    joined.destination_group,
    joined.died_in_hospital,
    joined.is_discharged_to_care_home,
    joined.primary_diagnosis,
    joined.primary_procedure,
    joined.secondary_diagnoses,
    joined.patient_classification,
    joined.discharge_method,
    joined.discharge_ready_date,
    joined.is_acsc_emergency_admission,
    joined.acsc_condition,
    joined.acsc_group,
    {{ coarsened('age_at_admission', 'joined.age_at_admission') }} as age_at_admission,
    age_bands.age_band,
    joined.spell_number_in_stay,
    joined.spells_in_stay,
    joined.is_transfer_in,
    joined.is_transfer_out,
    joined.is_stay_end and joined.stay_is_readmission_index as is_readmission_index,
    case when joined.is_stay_end then joined.stay_has_full_follow_up end as has_full_follow_up,
    case when joined.is_stay_end then joined.stay_readmitted_within_30_days end
        as readmitted_within_30_days,
    case when joined.is_stay_end then joined.stay_days_to_emergency_readmission end
        as days_to_emergency_readmission,
    case when joined.is_stay_end then joined.stay_readmission_stay_key end
        as readmission_stay_key,
    joined.is_stay_start and joined.stay_is_emergency_readmission as is_emergency_readmission,
    case when joined.is_stay_start then joined.stay_days_since_previous_discharge end
        as days_since_previous_discharge
from joined
left join age_bands
    on joined.age_at_admission between age_bands.min_age and age_bands.max_age
