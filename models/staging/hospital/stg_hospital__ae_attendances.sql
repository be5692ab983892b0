with

source as (
    select * from {{ source('hospital', 'ae_attendances') }}
),

renamed as (
    select
        record_token,
        provider_code,
        attendance_token,
        cast(arrival_datetime as timestamp) as arrived_at,
        cast(departure_datetime as timestamp) as departed_at,
        cast(arrival_datetime as date) as arrival_date,
        cast(departure_datetime as date) as departure_date,
        lower(trim(disposal)) as disposal
    from source
)

select * from renamed
