{#
  The period the extracts cover. Follow-up flags (is there a full 30 days after this
  discharge?) and commissioner months need it. Derived from hospital activity unless
  the vars extract_start_date / extract_end_date pin it: A&E extracts are cut by arrival
  date, so the first arrival marks the start robustly; the end is the last hospital date
  seen. GP and social care histories reach back years and do not mark the period.
#}
{%- set start_override = var('extract_start_date') -%}
{%- set end_override = var('extract_end_date') -%}

with

attendances as (
    select
        min(arrival_date) as first_date,
        max(arrival_date) as last_date
    from {{ ref('stg_hospital__ae_attendances') }}
),

episodes as (
    select
        min(admission_date) as first_date,
        greatest(max(admission_date), max(discharge_date)) as last_date
    from {{ ref('stg_hospital__apc_episodes') }}
),

derived as (
    select
        coalesce(attendances.first_date, episodes.first_date) as first_date,
        greatest(attendances.last_date, episodes.last_date) as last_date
    from attendances
    cross join episodes
)

select
    {% if start_override %}cast('{{ start_override }}' as date){% else %}first_date{% endif %}
        as extract_start_date,
    {% if end_override %}cast('{{ end_override }}' as date){% else %}last_date{% endif %}
        as extract_end_date,
    {{ 'true' if start_override or end_override else 'false' }} as is_set_by_var
from derived
