{#
  The standardised ratio and rate are replaced with ones from the published (rounded)
  readmissions, as every rate is: from the true count, ratio x expected would give the
  count back exactly. Where suppress_small_numbers withheld them they stay withheld.
#}
with

{{ import_ctes({'reference_rates': ref('ref_readmission_reference_rates')}) }}

overall as (
    select sum(reference_rate * index_spells) / sum(index_spells) as reference_rate
    from reference_rates
),

{%- set standardised = {
    'expected_readmissions': 'index_spells',
    'standardised_ratio': 'readmissions',
    'standardised_rate_pct': 'readmissions',
} %}
published as (
    {{ suppress_small_numbers(
        ref('int_readmissions_30_day_aggregated'),
        ['breakdown'] + commissioner_dimensions() + segment_dimensions(),
        ['index_spells', 'readmissions'],
        rates={'crude_rate_pct': ['readmissions', 'index_spells']},
        dependents=standardised,
    ) | indent(4) }}
)

select
    published.* replace (
        round(published.expected_readmissions, 1) as expected_readmissions,
        case
            when published.standardised_ratio is not null and round(published.expected_readmissions, 1) > 0
                then round(published.readmissions / round(published.expected_readmissions, 1), 3)
        end as standardised_ratio,
        case
            when published.standardised_rate_pct is not null and round(published.expected_readmissions, 1) > 0
                then round(100 * overall.reference_rate * published.readmissions
                    / round(published.expected_readmissions, 1), 1)
        end as standardised_rate_pct
    )
from published
cross join overall
