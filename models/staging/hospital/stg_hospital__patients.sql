with

source as (
    select * from {{ source('hospital', 'patients') }}
),

renamed as (
    select
        record_token,
        org_code as provider_code,
        coalesce(nullif(trim(sex), ''), '0') as sex_code,
        birth_month,
        lsoa_code,
        cast(imd_decile as integer) as imd_decile,
        residence_la_code
    from source
)

select * from renamed
