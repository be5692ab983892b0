{#
  The registered population, the denominator of every indicator rate: one row per
  person for each month of the extract in which a GP registration of theirs covers the
  1st of the month (registered on or before it, not deregistered by then). The 1st,
  because NHS England's "Patients Registered at a GP Practice" counts the list on the
  1st of each month. A person with several GP records (a re-registration) counts once.
  Rows without a month (the total, la_code+age_band, ...) use the list of the middle
  month of the extract (`is_reference_month`): counting every month would count one
  person once a month.
#}
with

{{ import_ctes({
    'record_persons': ref('stg_linkage__record_persons'),
    'gp_patients': ref('stg_gp__patients'),
    'extract_window': ref('int_extract_window_derived'),
}) }}

months as (
    {{ extract_months() }}
),

registrations as (
    select
        record_persons.person_id,
        gp_patients.registration_date,
        gp_patients.deregistration_date
    from gp_patients
    inner join record_persons
        on gp_patients.record_token = record_persons.record_token
)

select distinct
    registrations.person_id,
    months.reference_date,
    months.is_reference_month
from registrations
inner join months
    on registrations.registration_date <= months.reference_date
    and (registrations.deregistration_date is null
        or registrations.deregistration_date > months.reference_date)
