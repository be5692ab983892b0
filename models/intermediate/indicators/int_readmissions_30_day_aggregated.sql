{#
  Emergency readmissions within 30 days (NHS Digital compendium I02040) counted for
  commissioners, before disclosure control (mart_readmissions_30_day publishes them
  through suppress_small_numbers): the index spells of
  int_readmissions_30_day_index_stays by the month of discharge and the person's place,
  age at discharge, sex and IMD quintile, the observed readmissions, and the expected
  readmissions of indirect standardisation: each index spell contributes the reference
  rate of its stratum (age band, sex, admission method group, ICD-10 chapter) from
  ref_readmission_reference_rates, or the overall reference rate where the standard has
  no spell in that stratum.
#}
with

{{ import_ctes({
    'stays': ref('int_readmissions_30_day_index_stays'),
    'reference_rates': ref('ref_readmission_reference_rates'),
}) }}
{{ commissioner_dimension_imports() }}

-- Rates as decimals: a sum of doubles depends on the order DuckDB's threads add them in,
-- so a rebuild of the same data could differ in the last digit. No ratio where nothing
-- was expected (every stratum's reference rate 0): it was NaN or infinity, published.
overall as (
    select
        cast(
            sum(cast(reference_rate as decimal(18, 12)) * index_spells) / sum(index_spells)
            as decimal(18, 12)
        ) as reference_rate
    from reference_rates
),

counted as (
    select
        {{ commissioner_dimension_columns('stays', 'discharge_date') }},
        stays.is_readmitted,
        coalesce(
            cast(reference_rates.reference_rate as decimal(18, 12)), overall.reference_rate
        ) as reference_rate,
        overall.reference_rate as overall_reference_rate
    from stays
    {{ commissioner_dimension_joins('stays', 'discharge_date') }}
    cross join overall
    -- A person's age band or sex not known is a stratum of its own, as in the standard.
    left join reference_rates
        on coalesce(age_bands.age_band, 'unknown') = reference_rates.age_band
        and coalesce(sexes.sex, 'unknown') = reference_rates.sex
        and stays.admission_group = reference_rates.admission_group
        and stays.diagnosis_group = reference_rates.diagnosis_group
    where stays.is_index
)

select
    {{ commissioner_breakdown_columns() }},
    count(*) as index_spells,
    count(*) filter (where is_readmitted) as readmissions,
    cast(round(sum(reference_rate), 4) as double) as expected_readmissions,
    round(
        count(*) filter (where is_readmitted) / cast(nullif(sum(reference_rate), 0) as double), 4
    ) as standardised_ratio,
    round(
        100 * cast(any_value(overall_reference_rate) as double)
        * count(*) filter (where is_readmitted) / cast(nullif(sum(reference_rate), 0) as double),
        2
    ) as standardised_rate_pct
from counted
{{ commissioner_group_by() }}
