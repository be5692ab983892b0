{#
  Flows between consecutive care events (where people go next), counted for
  commissioners before disclosure control (mart_pathway_flows publishes these): by the
  month of the event they leave, place, age then, sex, IMD quintile, and the from/to
  event types. from_event_transitions is every transition leaving the same event type
  in the same cell, the denominator of the share going each way.
#}
with

transitions as (
    select * from {{ ref('int_pathway_transitions_paired') }}
),

people as (
    select * from {{ ref('int_persons_demographics_resolved') }}
),

extract_window as (
    select * from {{ ref('int_extract_window_derived') }}
),

age_bands as (
    select * from {{ ref('ref_age_bands') }}
),

sexes as (
    select * from {{ ref('ref_sex_codes') }}
),

in_period as (
    select
        {{ commissioner_dimension_columns('transitions', 'from_event_date') }},
        transitions.from_event_type,
        transitions.to_event_type,
        transitions.person_id,
        transitions.days_between
    from transitions
    {{ commissioner_dimension_joins('transitions', 'from_event_date') }}
    where transitions.from_event_date
        between extract_window.extract_start_date and extract_window.extract_end_date
),

flows as (
    select
        {{ commissioner_breakdown_columns() }},
        from_event_type,
        to_event_type,
        count(*) as transitions,
        count(distinct person_id) as people,
        median(days_between) as median_days_between
    from in_period
    {{ commissioner_group_by(always=['from_event_type', 'to_event_type']) }}
)

select
    *,
    sum(transitions) over (
        partition by
            breakdown, activity_month, la_code, practice_code, age_band, sex, imd_quintile,
            from_event_type
    ) as from_event_transitions
from flows
