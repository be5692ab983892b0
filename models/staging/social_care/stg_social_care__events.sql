with

source as (
    select * from {{ source('social_care', 'events') }}
),

renamed as (
    select
        record_token,
        la_code,
        lower(trim(event_type)) as event_type,
        nullif(trim(service_type), '') as service_type,
        nullif(trim(route_of_access), '') as route_of_access,
        cast(event_start_date as date) as event_start_date,
        cast(event_end_date as date) as event_end_date
    from source
)

select * from renamed
