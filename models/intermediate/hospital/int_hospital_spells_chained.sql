{#
  Joins transfers into continuous stays. A spell that starts on the day the person's
  previous spell ended, where the previous one discharged to another hospital (51) or
  this one was admitted from another hospital (51), continues the same stay: a patient
  moved between hospitals has not been discharged and readmitted. Which codes count as
  a transfer is data (is_hospital_transfer in the admission source and discharge
  destination seeds), not code.
#}
with

spells as (
    select * from {{ ref('int_hospital_spells_built') }}
),

ordered as (
    select
        *,
        row_number() over person_spells as spell_sequence,
        lag(discharge_date) over person_spells as previous_discharge_date,
        lag(is_discharged_by_transfer) over person_spells as previous_discharged_by_transfer
    from spells
    window person_spells as (
        partition by person_id
        order by admission_date, discharge_date nulls last, spell_key
    )
),

flagged as (
    select
        *,
        coalesce(
            admission_date = previous_discharge_date
            and (previous_discharged_by_transfer or is_admitted_by_transfer),
            false
        ) as is_transfer_in
    from ordered
),

numbered as (
    select
        *,
        sum(case when is_transfer_in then 0 else 1 end) over (
            partition by person_id
            order by spell_sequence
            rows between unbounded preceding and current row
        ) as stay_sequence
    from flagged
),

chained as (
    select
        *,
        first_value(spell_key) over person_stay as stay_key,
        row_number() over person_stay as spell_number_in_stay,
        count(*) over (partition by person_id, stay_sequence) as spells_in_stay
    from numbered
    window person_stay as (partition by person_id, stay_sequence order by spell_sequence)
)

select
    spell_key,
    stay_key,
    person_id,
    spell_sequence,
    stay_sequence,
    spell_number_in_stay,
    spells_in_stay,
    is_transfer_in,
    spell_number_in_stay < spells_in_stay as is_transfer_out,
    provider_code,
    admission_date,
    discharge_date,
    is_open,
    length_of_stay_days,
    episode_count,
    admission_method,
    admission_type,
    admission_source,
    is_admitted_by_transfer,
    discharge_destination,
    destination_group,
    died_in_hospital,
    is_discharged_by_transfer,
    is_discharged_to_care_home,
    primary_diagnosis,
    primary_procedure,
    secondary_diagnoses,
    patient_classification,
    discharge_method,
    discharge_ready_date,
    acsc_condition,
    acsc_group,
    is_acsc_emergency_admission
from chained
