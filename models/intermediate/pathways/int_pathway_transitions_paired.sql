{#
  Each consecutive pair of events on a person's timeline: where they went next, and
  how many days later. Events on the same day are ordered by the event type's
  same_day_order (seed ref_care_event_types: an A&E attendance before the admission it
  led to, a discharge before the social care request it prompted), then by key so the
  order is stable from run to run.

  Incremental by person (macros/incremental_by_person.sql).
#}
{{ config(**incremental_by_person()) }}
-- depends_on: {{ ref('int_person_input_changes') }}

with

events as (
    select * from {{ ref('int_care_events_unioned') }}
    {{ changed_persons_only('person_id') }}
),

sequenced as (
    select
        *,
        row_number() over person_timeline as event_sequence,
        lead(event_key) over person_timeline as next_event_key,
        lead(setting) over person_timeline as next_setting,
        lead(event_type) over person_timeline as next_event_type,
        lead(event_start_date) over person_timeline as next_event_date
    from events
    window person_timeline as (
        partition by person_id
        order by event_start_date, same_day_order, event_key
    )
)

select
    {{ surrogate_key(['event_key', 'next_event_key']) }} as transition_key,
    person_id,
    event_sequence as transition_number,
    event_key as from_event_key,
    setting as from_setting,
    event_type as from_event_type,
    event_start_date as from_event_date,
    next_event_key as to_event_key,
    next_setting as to_setting,
    next_event_type as to_event_type,
    next_event_date as to_event_date,
    date_diff('day', event_start_date, next_event_date) as days_between
from sequenced
where next_event_key is not null
