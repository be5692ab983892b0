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
        lower(trim(disposal)) as disposal,
        -- ECDS's SNOMED CT coded fields; null from a generic delivery.
        nullif(trim(department_type), '') as department_type,
        nullif(trim(arrival_mode_snomed), '') as arrival_mode_snomed,
        nullif(trim(chief_complaint_snomed), '') as chief_complaint_snomed,
        nullif(trim(acuity_snomed), '') as acuity_snomed,
        nullif(trim(discharge_status_snomed), '') as discharge_status_snomed,
        nullif(trim(discharge_destination_snomed), '') as discharge_destination_snomed,
        nullif(trim(diagnosis_snomed), '') as diagnosis_snomed
    from source
)

select * from renamed
