{#
  Disclosure control for every commissioner-facing aggregate, as code (OpenSAFELY style):

  * a count from 1 to threshold - 1 (var suppression_threshold, default 8, so 1-7) is
    published as null and its <count>_suppressed flag is true; 0 is shown as 0;
  * every other count is rounded to the nearest multiple of var rounding_base (5);
  * each rate is computed from the published (rounded) counts, never from the true ones,
    so a rate cannot be used to recover a count; it is null where either count is withheld
    or the denominator is 0;
  * each dependent statistic (a median, say) is withheld where the count it describes is.

  Column secondary_suppression is false here. After dbt build,
  joinedup.secondary_suppression withholds further published cells (in the same form:
  null, flag true, rates and statistics nulled) wherever a withheld one could be
  recovered by subtracting published cells from their margin, and sets it true on
  every row: a withheld cell may then be any count from 1 up, not only 1 to threshold-1.

  Arguments:
    relation    the unsuppressed aggregate (a ref or a CTE name)
    dimensions  columns passed through unchanged (the grouping)
    counts      count columns to suppress and round
    rates       {rate column: [numerator count, denominator count]}, as a percentage, 1 dp
    dependents  {statistic column: count column it describes}
#}
{% macro suppress_small_numbers(relation, dimensions, counts, rates={}, dependents={}) -%}
    {%- set threshold = var('suppression_threshold') | int -%}
    {%- set base = var('rounding_base') | int -%}
    {%- if threshold < 1 or base < 1 -%}
        {{ exceptions.raise_compiler_error(
            'suppression_threshold and rounding_base must be at least 1, got '
            ~ threshold ~ ' and ' ~ base) }}
    {%- endif -%}
    {%- for rate, parts in rates.items() -%}
        {%- for part in parts if part not in counts -%}
            {{ exceptions.raise_compiler_error(
                'rate ' ~ rate ~ ' uses ' ~ part ~ ', which is not one of the counts ' ~ counts) }}
        {%- endfor -%}
    {%- endfor -%}
    {%- for statistic, count in dependents.items() if count not in counts -%}
        {{ exceptions.raise_compiler_error(
            statistic ~ ' depends on ' ~ count ~ ', which is not one of the counts ' ~ counts) }}
    {%- endfor -%}
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
        else round(100.0 * {{ parts[0] }} / {{ parts[1] }}, 1)
    end as {{ rate }},
    {%- endfor %}
    {%- for statistic in dependents %}
    {{ statistic }},
    {%- endfor %}
    false as secondary_suppression,
from published
{%- endmacro %}
