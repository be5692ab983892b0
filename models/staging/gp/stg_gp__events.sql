with

source as (
    select * from {{ source('gp', 'events') }}
),

renamed as (
    select
        record_token,
        practice_code,
        cast(event_date as date) as event_date,
        trim(snomed_code) as snomed_code
    from source
)

select * from renamed
