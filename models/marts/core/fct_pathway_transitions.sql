with

transitions as (
    select * from {{ ref('int_pathway_transitions_paired') }}
)

select
    transition_key,
    person_id,
    transition_number,
    from_event_key,
    from_setting,
    from_event_type,
    from_event_date,
    to_event_key,
    to_setting,
    to_event_type,
    to_event_date,
    days_between
from transitions
