{#
  Which persons' event facts a build must compute again (macros/incremental_by_person.sql).

  A person's input hash sums a hash of every row the event facts read for that person:
  the records linkage placed with them, their GP events, A&E attendances and social care
  events, their continuous hospital stays (as int_hospital_stays_readmissions_flagged
  derives them, extract window and all) and their resolved demographics (the birth month
  the facts' ages come from, which moves with the extract window). A sum, not an exclusive
  or, so two equal rows do not cancel out.

  Against this table as the previous build left it ({{ this }} is still the old table
  while dbt builds the new one), a person is changed when their hash is new or differs,
  and gone (hash null, changed) when they have no rows now: opted out since, or relabelled
  by a full re-link. A person gone stays listed for one build only. With no previous
  table every person is changed.
#}
{{ config(materialized='table') }}

with

record_persons as (
    select * from {{ ref('stg_linkage__record_persons') }}
),

row_hashes as (
    select person_id, hash(record_persons) as row_hash
    from record_persons
    union all
    select record_persons.person_id, hash(gp_events)
    from {{ ref('stg_gp__events') }} as gp_events
    inner join record_persons on gp_events.record_token = record_persons.record_token
    union all
    select record_persons.person_id, hash(attendances)
    from {{ ref('stg_hospital__ae_attendances') }} as attendances
    inner join record_persons on attendances.record_token = record_persons.record_token
    union all
    select record_persons.person_id, hash(social_care_events)
    from {{ ref('stg_social_care__events') }} as social_care_events
    inner join record_persons on social_care_events.record_token = record_persons.record_token
    union all
    select person_id, hash(stays)
    from {{ ref('int_hospital_stays_readmissions_flagged') }} as stays
    union all
    select person_id, hash(people)
    from {{ ref('int_persons_demographics_resolved') }} as people
),

hashed as (
    select person_id, sum(cast(row_hash as hugeint)) as input_hash
    from row_hashes
    group by person_id
)

{%- set previous = load_relation(this) if execute else none %}
{% if previous is not none and not should_full_refresh() %}
select
    hashed.person_id,
    hashed.input_hash,
    previous.input_hash is distinct from hashed.input_hash as changed
from hashed
left join {{ this }} as previous
    on hashed.person_id = previous.person_id
union all
select
    previous.person_id,
    cast(null as hugeint) as input_hash,
    true as changed
from {{ this }} as previous
anti join hashed
    on previous.person_id = hashed.person_id
where previous.input_hash is not null
{% else %}
select person_id, input_hash, true as changed
from hashed
{% endif %}
