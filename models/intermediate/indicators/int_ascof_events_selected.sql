{#
  The people ASCOF 2B, 2C and 2E count, from CLD, before aggregation
  (int_ascof_aggregated counts them), after NHS England's CLD replication code
  (NHSDigital/ASC-Client-Level-Data-SALT-ASCOF-transformations, "ASCOF 2B2C" and
  "ASCOF 2E replication code"). The period is the extract window.

  Its de-duplication is settled before this model: at landing, an event's identity is
  the concatenation of its council, person, client type, type, start date and what it
  is (service type, component and delivery mechanism for a service), and the latest
  submission's version of it wins (layouts/cld.yaml: supersede), so an event a later
  submission closed is closed here and one it re-opened is open. A person is the linked
  person, who is the NHS number where the council recorded one and the council's own
  record (its LA code and person identifier) where not. Counting people, not events,
  also counts once an event resent with a field of its identity changed (a new event
  in NHS England's terms).

  * long_term_admission (2B 18-64, 2C 65+): people whose long-term support needs are met
    by admission to residential or nursing care. NHS England's cohort: service users'
    services of type 'Long Term Support: Residential Care' or '... Nursing Care' (a
    delivery without CLD's fields: by its service group), still open at the period's
    end (not ended before the day after it), of people with a known month of birth. A
    person with such a service that began before the period is no new admission; the
    others are admitted on the first start of one in the period. Age at the period's
    end (NHS England's snapshot date, the day after the period), so someone turning 65
    during the period counts in 2C even if admitted at 64.
  * long_term_support (2E): one row per person and month of the period in which a
    service user's long-term support service (residential, nursing or community) was
    open. Their accommodation status, in the month and over the whole period, is the
    one recorded on their latest-starting such event there; a known status beats
    'Unknown' (or a blank) on the same start date, and different known statuses on it
    count as 'Unknown' (NHS England's rules). Settled statuses
    (ref_cld_accommodation_statuses) are living at home or with family.
#}
with

{{ import_ctes({
    'social_care_events': ref('stg_social_care__events'),
    'service_types': ref('ref_social_care_service_types'),
    'statuses': ref('ref_cld_accommodation_statuses'),
    'record_persons': ref('stg_linkage__record_persons'),
    'people': ref('int_persons_demographics_resolved'),
    'extract_window': ref('int_extract_window_derived'),
}) }}

long_term_services as (
    select
        record_persons.person_id,
        social_care_events.event_start_date,
        social_care_events.event_end_date,
        coalesce(
            social_care_events.cld_service_type in (
                'Long Term Support: Residential Care', 'Long Term Support: Nursing Care'
            ),
            service_types.service_group = 'long_term_residential'
        ) as is_residential_or_nursing,
        coalesce(social_care_events.accommodation_status, 'Unknown') as accommodation_status
    from social_care_events
    inner join record_persons using (record_token)
    left join service_types
        on social_care_events.service_type = service_types.service_type
    where social_care_events.event_type = 'service'
        -- A generic delivery records no client type: its events are service users'.
        and coalesce(social_care_events.client_type, 'Service User') = 'Service User'
        and coalesce(
            social_care_events.cld_service_type in (
                'Long Term Support: Residential Care', 'Long Term Support: Nursing Care',
                'Long Term Support: Community'
            ),
            service_types.service_group in ('long_term_residential', 'long_term_community')
        )
),

-- NHS England's residential and nursing cohort: open on the day after the period.
care_home_cohort as (
    select long_term_services.*
    from long_term_services
    cross join extract_window
    where long_term_services.is_residential_or_nursing
        and (long_term_services.event_end_date is null
            or long_term_services.event_end_date > extract_window.extract_end_date)
),

admissions as (
    select
        care_home_cohort.person_id,
        min(care_home_cohort.event_start_date) as event_date
    from care_home_cohort
    cross join extract_window
    group by care_home_cohort.person_id, extract_window.extract_start_date,
        extract_window.extract_end_date
    having min(care_home_cohort.event_start_date)
        between extract_window.extract_start_date and extract_window.extract_end_date
),

months as (
    select
        reference_date as month_start,
        cast(reference_date + interval 1 month - interval 1 day as date) as month_end
    from ({{ extract_months() }})
),

-- Every long-term support service open in the period, with each month it is open in.
open_in_month as (
    select long_term_services.*, months.month_start
    from long_term_services
    cross join extract_window
    inner join months
        on long_term_services.event_start_date <= least(months.month_end, extract_window.extract_end_date)
        and (long_term_services.event_end_date is null
            or long_term_services.event_end_date >= greatest(months.month_start, extract_window.extract_start_date))
),

-- The latest-starting events of each person and month (period: null month), known first.
status_candidates as (
    select
        person_id,
        month_start,
        accommodation_status,
        rank() over (
            partition by person_id, month_start
            order by event_start_date desc, (accommodation_status <> 'Unknown') desc
        ) as status_rank
    from (
        select person_id, month_start, event_start_date, accommodation_status
        from open_in_month
        union all
        select person_id, null, event_start_date, accommodation_status
        from open_in_month
    )
),

statuses_resolved as (
    select
        person_id,
        month_start,
        case
            when count(distinct accommodation_status) = 1 then min(accommodation_status)
            else 'Unknown'
        end as accommodation_status
    from status_candidates
    where status_rank = 1
    group by person_id, month_start
),

settled as (
    select
        statuses_resolved.person_id,
        statuses_resolved.month_start,
        statuses_resolved.accommodation_status,
        coalesce(statuses.is_settled, false) as is_settled
    from statuses_resolved
    left join statuses using (accommodation_status)
),

selected as (
    select
        'long_term_admission' as measure,
        admissions.person_id,
        admissions.event_date,
        {{ age_in_years('people.birth_month', 'extract_window.extract_end_date + 1') }}
            as age_at_period_end,
        null::varchar as accommodation_status,
        null::boolean as is_settled_in_month,
        null::boolean as is_settled_in_period
    from admissions
    inner join people using (person_id)
    cross join extract_window
    where people.birth_month is not null

    union all

    select
        'long_term_support',
        in_month.person_id,
        in_month.month_start,
        null,
        in_month.accommodation_status,
        in_month.is_settled,
        in_period.is_settled
    from settled as in_month
    inner join settled as in_period
        on in_month.person_id = in_period.person_id
        and in_period.month_start is null
    where in_month.month_start is not null
)

select *
from selected
-- ASCOF's measures are of adults: 2B from 18, 2C from 65 (CLD itself holds adults only).
where measure <> 'long_term_admission' or age_at_period_end >= 18
