with

source as (
    select * from {{ source('gp', 'patients') }}
),

renamed as (
    select
        record_token,
        org_code as practice_code,
        -- Blank and 0 both mean "not known"; one code for it keeps later rules simple.
        coalesce(nullif(trim(sex), ''), '0') as sex_code,
        birth_month,
        lsoa_code,
        cast(imd_decile as integer) as imd_decile,
        residence_la_code,
        cast(registration_date as date) as registration_date,
        cast(deregistration_date as date) as deregistration_date
    from source
)

select * from renamed
