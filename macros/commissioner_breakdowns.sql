{#
  The breakdowns every commissioner-facing aggregate is published at, defined once.

  Each aggregate is grouped by GROUPING SETS rather than one full cross of all
  dimensions: a full cross alone leaves most cells small and suppressed, and
  totals added up from suppressed, rounded cells would be wrong. Each row says
  which dimensions it is broken down by in `breakdown` (e.g. 'month+la_code'); a
  dimension not in the breakdown is null, and a null in a dimension that is in the
  breakdown means "not known".
#}
{% macro commissioner_breakdown_sets() -%}
    {{ return([
        [],
        ['activity_month'],
        ['activity_month', 'la_code'],
        ['activity_month', 'practice_code'],
        ['activity_month', 'age_band'],
        ['activity_month', 'sex'],
        ['activity_month', 'imd_quintile'],
        ['la_code', 'age_band'],
        ['la_code', 'sex'],
        ['la_code', 'imd_quintile'],
        ['activity_month', 'la_code', 'age_band', 'sex', 'imd_quintile'],
    ]) }}
{%- endmacro %}

{% macro commissioner_dimensions() -%}
    {{ return(['activity_month', 'la_code', 'practice_code', 'age_band', 'sex', 'imd_quintile']) }}
{%- endmacro %}

{# GROUP BY clause: every breakdown set, each extended by `always` (e.g. flow from/to). #}
{% macro commissioner_group_by(always=[]) -%}
    group by grouping sets (
    {%- for dims in commissioner_breakdown_sets() %}
        ({{ (dims + always) | join(', ') }}){{ ',' if not loop.last }}
    {%- endfor %}
    )
{%- endmacro %}

{# The `breakdown` label of a grouped row, e.g. 'total', 'month', 'month+la_code'. #}
{% macro commissioner_breakdown_label() -%}
    coalesce(nullif(concat_ws('+'
    {%- for dim in commissioner_dimensions() %},
        case when grouping({{ dim }}) = 0 then '{{ 'month' if dim == 'activity_month' else dim }}' end
    {%- endfor %}
    ), ''), 'total')
{%- endmacro %}
