with

source as (
    select * from {{ source('hospital', 'apc_episodes') }}
),

renamed as (
    select
        record_token,
        provider_code,
        spell_token,
        cast(episode_number as integer) as episode_number,
        cast(admission_date as date) as admission_date,
        cast(discharge_date as date) as discharge_date,
        upper(trim(admission_method)) as admission_method,
        nullif(trim(admission_source), '') as admission_source,
        nullif(trim(discharge_destination), '') as discharge_destination,
        -- HES style: upper case, no dot (J44.1 -> J441), so code lists match on prefixes.
        nullif(upper(replace(trim(primary_diagnosis), '.', '')), '') as primary_diagnosis,
        nullif(upper(replace(trim(primary_procedure), '.', '')), '') as primary_procedure,
        -- The national (HES APC) layout's extra columns; null from a generic delivery.
        cast(episode_start_date as date) as episode_start_date,
        cast(episode_end_date as date) as episode_end_date,
        nullif(trim(discharge_method), '') as discharge_method,
        nullif(trim(patient_classification), '') as patient_classification,
        nullif(trim(main_specialty), '') as main_specialty,
        nullif(upper(replace(trim(secondary_diagnoses), '.', '')), '') as secondary_diagnoses,
        nullif(upper(replace(trim(secondary_procedures), '.', '')), '') as secondary_procedures,
        cast(discharge_ready_date as date) as discharge_ready_date
    from source
)

select * from renamed
