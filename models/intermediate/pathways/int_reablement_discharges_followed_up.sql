{#
  Older people discharged from hospital into reablement, and where each was 91 days
  later: the linked measure of the former ASCOF 2B part 1 (SALT STS004), "the proportion
  of older people (65 and over) who were still at home 91 days after discharge from
  hospital into reablement / rehabilitation services". Linking makes it measurable from
  the records themselves instead of a council's follow-up survey:
  * a discharge is a continuous stay ending with the person alive, aged 65 or over at
    discharge; it is into reablement when a reablement service (CLD Short Term Support:
    ST-Max) starts on the day of discharge or up to var('reablement_start_days') (7)
    days after;
  * day 91 is the 91st day after the discharge date; the person is still at home then
    unless on that day they are in hospital (a spell admitted on or before it and not
    discharged before it), in a care home (a residential or nursing care service
    covering it, or a later discharge to a care home before it), or dead (a death on
    the timeline on or before it: the extracts hold deaths in hospital and A&E only);
  * only discharges whose day 91 is inside the extract window count (full follow-up).
#}
{%- set start_days = var('reablement_start_days') | int -%}

with

stays as (
    select * from {{ ref('int_hospital_stays_readmissions_flagged') }}
),

spells as (
    select * from {{ ref('int_hospital_spells_chained') }}
),

events as (
    select * from {{ ref('int_care_events_unioned') }}
),

people as (
    select * from {{ ref('int_persons_demographics_resolved') }}
),

extract_window as (
    select * from {{ ref('int_extract_window_derived') }}
),

discharges as (
    select
        stays.stay_key,
        stays.person_id,
        stays.discharge_date,
        stays.discharge_date + 91 as day_91,
        {{ age_in_years('people.birth_month', 'stays.discharge_date') }} as age_at_discharge
    from stays
    inner join people
        on stays.person_id = people.person_id
    where not stays.is_open
        and not stays.died_in_hospital
),

reablement_starts as (
    select
        discharges.stay_key,
        min(events.event_start_date) as reablement_start_date
    from discharges
    inner join events
        on discharges.person_id = events.person_id
        and events.event_type = 'social_care_service'
        and events.event_detail = 'Reablement'
        and events.event_start_date >= discharges.discharge_date
        and events.event_start_date <= discharges.discharge_date + {{ start_days }}
    group by discharges.stay_key
),

into_reablement as (
    select
        discharges.*,
        reablement_starts.reablement_start_date
    from discharges
    inner join reablement_starts
        on discharges.stay_key = reablement_starts.stay_key
    where discharges.age_at_discharge >= 65
),

in_hospital as (
    select distinct into_reablement.stay_key
    from into_reablement
    inner join spells
        on into_reablement.person_id = spells.person_id
        and spells.admission_date > into_reablement.discharge_date
        and spells.admission_date <= into_reablement.day_91
        and (spells.discharge_date is null or spells.discharge_date >= into_reablement.day_91)
),

in_care_home as (
    select distinct into_reablement.stay_key
    from into_reablement
    inner join events
        on into_reablement.person_id = events.person_id
        and events.event_type = 'social_care_service'
        and events.event_detail in ('Residential care', 'Nursing care')
        and events.event_start_date <= into_reablement.day_91
        and (events.event_end_date is null or events.event_end_date >= into_reablement.day_91)

    union

    select into_reablement.stay_key
    from into_reablement
    inner join spells
        on into_reablement.person_id = spells.person_id
        and spells.is_discharged_to_care_home
        and spells.discharge_date > into_reablement.discharge_date
        and spells.discharge_date <= into_reablement.day_91
),

dead as (
    select distinct into_reablement.stay_key
    from into_reablement
    inner join events
        on into_reablement.person_id = events.person_id
        and events.event_type = 'death'
        and events.event_start_date <= into_reablement.day_91
)

select
    into_reablement.stay_key,
    into_reablement.person_id,
    into_reablement.discharge_date,
    into_reablement.reablement_start_date,
    into_reablement.age_at_discharge,
    -- A day 91 past the extract end is no observation, only arithmetic: it is withheld
    -- (at a million people such dates coincided with mis-keyed dates of birth, which
    -- the privacy gate rightly cannot tell from a leak).
    case
        when into_reablement.day_91 <= extract_window.extract_end_date
            then into_reablement.day_91
    end as day_91,
    into_reablement.day_91 <= extract_window.extract_end_date as has_full_follow_up,
    in_hospital.stay_key is not null as in_hospital_on_day_91,
    in_care_home.stay_key is not null as in_care_home_on_day_91,
    dead.stay_key is not null as died_by_day_91,
    in_hospital.stay_key is null and in_care_home.stay_key is null and dead.stay_key is null
        as still_at_home_on_day_91
from into_reablement
cross join extract_window
left join in_hospital
    on into_reablement.stay_key = in_hospital.stay_key
left join in_care_home
    on into_reablement.stay_key = in_care_home.stay_key
left join dead
    on into_reablement.stay_key = dead.stay_key
