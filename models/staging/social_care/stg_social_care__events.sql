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
        cast(event_end_date as date) as event_end_date,
        -- Client Level Data's own fields, as delivered; null from a generic delivery.
        nullif(trim(client_type), '') as client_type,
        nullif(trim(cld_service_type), '') as cld_service_type,
        nullif(trim(service_component), '') as service_component,
        nullif(trim(delivery_mechanism), '') as delivery_mechanism,
        nullif(trim(assessment_type), '') as assessment_type,
        nullif(trim(event_outcome), '') as event_outcome,
        nullif(trim(primary_support_reason), '') as primary_support_reason,
        nullif(trim(accommodation_status), '') as accommodation_status
    from source
)

select * from renamed
