with

source as (
    select * from {{ source('linkage', 'record_person') }}
),

renamed as (
    select
        source as record_source,
        record_token,
        person_id
    from source
)

select * from renamed
