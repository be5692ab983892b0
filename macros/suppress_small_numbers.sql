{#
  Disclosure control for every commissioner-facing aggregate, as code (OpenSAFELY style):

  * a count from 1 to threshold - 1 (var suppression_threshold, default 8, so 1-7) is
    published as null and its <count>_suppressed flag is true; 0 is shown as 0;
  * every other count is rounded to the nearest multiple of var rounding_base (5);
  * each rate is computed from the published (rounded) counts, never from the true ones,
    so a rate cannot be used to recover a count; it is null where either count is withheld
    or the denominator is 0;
  * each dependent statistic (a median, say) is withheld where the count it describes is,
    and wherever that count is below var statistic_min_group (default 10): a median of
    a few people is one person's value (or the mean of two), so no statistic describes
    fewer people than the smallest published count a reader sees (10, from 8-12 rounded).
    The differencing audit knows the rule: a shown statistic says its count is at least
    statistic_min_group, a withheld one beside a shown count that it is below.

  Column secondary_suppression is false here. Then, within dbt build, the marts'
  materialization (macros/materializations/disclosure_controlled.sql, running
  joinedup.privacy.secondary_suppression) withholds further published cells (in the
  same form: null, flag true, rates and statistics nulled) wherever a withheld one could
  be recovered by subtracting published cells from their margin, and sets it true on
  every row: a withheld cell may then be any count from 1 up, not only 1 to threshold-1.

  The arguments must agree with the columns' meta in the mart's YAML (what secondary
  suppression, the dashboard, the quality gate and the privacy report read): when the
  model runs, a disagreement stops it, naming both.

  Arguments:
    relation    the unsuppressed aggregate (a ref or a CTE name)
    dimensions  columns passed through unchanged (the grouping)
    counts      count columns to suppress and round
    rates       {rate column: [numerator count, denominator count]}, as a percentage, 1 dp;
                or [numerator, denominator, per] for a rate per `per` (e.g. 100000 for a
                rate per 100,000 people, as the national indicators state theirs), with
                `per:` the same in the rate column's meta
    dependents  {statistic column: count column it describes}
#}
{% macro suppress_small_numbers(relation, dimensions, counts, rates={}, dependents={}) -%}
    {%- set threshold = var('suppression_threshold') | int -%}
    {%- set base = var('rounding_base') | int -%}
    {%- set min_group = var('statistic_min_group') | int -%}
    {%- if threshold < 1 or base < 1 -%}
        {{ exceptions.raise_compiler_error(
            'suppression_threshold and rounding_base must be at least 1, got '
            ~ threshold ~ ' and ' ~ base) }}
    {%- endif -%}
    {%- if min_group < threshold -%}
        {{ exceptions.raise_compiler_error(
            'statistic_min_group (' ~ min_group ~ ') must be at least suppression_threshold ('
            ~ threshold ~ '): a statistic may not describe fewer people than a count may; '
            ~ 'set it in dbt_project.yml vars or with --vars') }}
    {%- endif -%}
    {%- for rate, parts in rates.items() -%}
        {%- for part in parts[:2] if part not in counts -%}
            {{ exceptions.raise_compiler_error(
                'rate ' ~ rate ~ ' uses ' ~ part ~ ', which is not one of the counts ' ~ counts) }}
        {%- endfor -%}
    {%- endfor -%}
    {%- for statistic, count in dependents.items() if count not in counts -%}
        {{ exceptions.raise_compiler_error(
            statistic ~ ' depends on ' ~ count ~ ', which is not one of the counts ' ~ counts) }}
    {%- endfor -%}
    {%- if execute and model.resource_type == 'model' -%}
        {{ suppress_small_numbers_agrees_with_meta(dimensions, counts, rates, dependents) }}
    {%- endif -%}
with

unsuppressed as (
    select * from {{ relation }}
),

published as (
    select
        {%- for dimension in dimensions %}
        {{ dimension }},
        {%- endfor %}
        {%- for count in counts %}
        case
            when {{ count }} between 1 and {{ threshold - 1 }} then null
            else cast(round({{ count }} / {{ base }}.0) * {{ base }} as bigint)
        end as {{ count }},
        coalesce({{ count }} between 1 and {{ threshold - 1 }}, false) as {{ count }}_suppressed,
        {%- endfor %}
        {%- for statistic, count in dependents.items() %}
        case
            when {{ count }} between 1 and {{ threshold - 1 }} then null
            when {{ count }} < {{ min_group }} then null
            else {{ statistic }}
        end as {{ statistic }},
        {%- endfor %}
    from unsuppressed
)

select
    {%- for dimension in dimensions %}
    {{ dimension }},
    {%- endfor %}
    {%- for count in counts %}
    {{ count }},
    {{ count }}_suppressed,
    {%- endfor %}
    {%- for rate, parts in rates.items() %}
    case
        when {{ parts[0] }} is null or {{ parts[1] }} is null or {{ parts[1] }} = 0 then null
        else round({{ parts[2] if parts | length > 2 else 100 }}.0 * {{ parts[0] }} / {{ parts[1] }}, 1)
    end as {{ rate }},
    {%- endfor %}
    {%- for statistic in dependents %}
    {{ statistic }},
    {%- endfor %}
    false as secondary_suppression,
from published
{%- endmacro %}


{#
  The suppress_small_numbers call of a model against its columns' meta
  (joinedup.warehouse.marts): the same dimensions (breakdown, dimension and key roles),
  counts, rates and dependent statistics, or a compiler error naming both.
#}
{% macro suppress_small_numbers_agrees_with_meta(dimensions, counts, rates, dependents) -%}
    {%- set meta = {} -%}
    {%- for name, column in model.columns.items() -%}
        {%- do meta.update({name: (column.get('config') or {}).get('meta') or column.get('meta') or {}}) -%}
    {%- endfor -%}
    {%- set described = {'dimensions': [], 'counts': [], 'rates': {}, 'dependents': {}} -%}
    {%- for name, m in meta.items() -%}
        {%- if m.get('role') in ('breakdown', 'dimension', 'key') -%}
            {%- do described['dimensions'].append(name) -%}
        {%- elif m.get('role') == 'count' -%}
            {%- do described['counts'].append(name) -%}
        {%- elif m.get('role') == 'rate' -%}
            {%- set parts = [m.get('numerator'), m.get('denominator')] -%}
            {%- if m.get('per', 100) != 100 -%}{%- do parts.append(m.get('per')) -%}{%- endif -%}
            {%- do described['rates'].update({name: parts}) -%}
        {%- elif m.get('role') == 'statistic' -%}
            {%- do described['dependents'].update({name: m.get('of')}) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set called = {'dimensions': dimensions, 'counts': counts, 'rates': rates,
                      'dependents': dependents} -%}
    {%- for key in ['dimensions', 'counts', 'rates', 'dependents'] -%}
        {%- if tojson(called[key], sort_keys=true) != tojson(described[key], sort_keys=true) -%}
            {{ exceptions.raise_compiler_error(
                model.name ~ ': suppress_small_numbers gets ' ~ key ~ ' ' ~ tojson(called[key])
                ~ ' but the columns\' meta in ' ~ (model.patch_path or '').split('://')[-1] ~ ' say '
                ~ tojson(described[key]) ~ '; make them agree (joinedup.warehouse.marts).') }}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}
