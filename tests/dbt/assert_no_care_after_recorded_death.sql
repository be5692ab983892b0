{{ config(severity='warn') }}
{#
  Care recorded after a person's recorded death points at a source error (a wrong
  disposal or discharge code) or a linkage error (two people joined). Worth a warning
  for the data engineers; not a reason to stop the build.
#}
select
    transitions.person_id,
    transitions.from_event_date as date_of_death,
    transitions.to_event_type,
    transitions.to_event_date
from {{ ref('fct_pathway_transitions') }} as transitions
where transitions.from_event_type = 'death'
