{#
  The ONS mid-year population estimates (seed ref_ons_mid_year_population), the
  denominator of the indicators' rates per 100,000 when var indicator_denominator is
  `ons`: one row per local authority, sex and age for each month of the extract, from
  the latest mid-year (30 June) estimate on or before the 1st of the month, or the
  earliest the seed has for a month before all of them. Every `population_<year>`
  column of the seed is read, so a file with other years drops in.
#}
with

{{ import_ctes({
    'estimates': ref('ref_ons_mid_year_population'),
    'extract_window': ref('int_extract_window_derived'),
}) }}

months as (
    {{ extract_months() }}
),

by_year as (
    unpivot estimates
    on columns('^population_[0-9]{4}$')
    into name estimate_column value population
),

dated as (
    select
        ladcode23 as la_code,
        sex as sex_code,
        age,
        make_date(cast(right(estimate_column, 4) as integer), 6, 30) as mid_year_date,
        cast(population as bigint) as population
    from by_year
),

chosen as (
    select
        months.reference_date,
        months.is_reference_month,
        coalesce(
            max(dated.mid_year_date) filter (where dated.mid_year_date <= months.reference_date),
            min(dated.mid_year_date)
        ) as mid_year_date
    from months
    cross join dated
    group by all
)

select
    dated.la_code,
    dated.sex_code,
    dated.age,
    chosen.reference_date,
    chosen.is_reference_month,
    dated.mid_year_date,
    dated.population
from chosen
inner join dated
    on chosen.mid_year_date = dated.mid_year_date
