with

source as (
    select * from {{ source('social_care', 'clients') }}
),

renamed as (
    select
        record_token,
        org_code as la_code,
        coalesce(nullif(trim(sex), ''), '0') as sex_code,
        birth_month,
        lsoa_code,
        cast(imd_decile as integer) as imd_decile,
        residence_la_code
    from source
)

select * from renamed
