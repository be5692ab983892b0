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
        nullif(upper(replace(trim(primary_procedure), '.', '')), '') as primary_procedure
    from source
)

select * from renamed
