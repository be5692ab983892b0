{#
  The breakdowns every commissioner-facing aggregate is published at, defined once.

  Each aggregate is grouped by GROUPING SETS rather than one full cross of all
  dimensions: a full cross alone leaves most cells small and suppressed, and
  totals added up from suppressed, rounded cells would be wrong. Each row says
  which dimensions it is broken down by in `breakdown` (e.g. 'month+la_code'); a
  dimension not in the breakdown is null, and a null in a dimension that is in the
  breakdown means "not known".
#}
{#
  Indicators (the aggregates in models/intermediate/indicators/, and their population,
  int_indicator_population_cells)
  are also broken down by the equity and need segments of int_persons_segmented:
  Core20PLUS5, frailty band and number of long-term conditions. Each segment is crossed
  with place only (alone, and by la_code), and la_code alone is added (place over the
  whole extract): 7 grouping sets more, not a cube of segments by every dimension: a cube leaves most cells small, suppressed and, through secondary
  suppression, withholding their neighbours. A segment's cells add up to their margin
  (total, la_code), so the differencing audit checks them like any other breakdown.
#}
{% macro breakdowns_are_segmented() -%}
    {%- set path = (model.get('original_file_path') if model is mapping else '') or '' -%}
    {{ return(path.replace('\\', '/').startswith('models/intermediate/indicators/')) }}
{%- endmacro %}

{% macro segment_dimensions() -%}
    {{ return(['core20plus5', 'frailty_risk', 'long_term_conditions']) }}
{%- endmacro %}

{% macro commissioner_breakdown_sets() -%}
    {%- set sets = [
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
    ] -%}
    {%- if breakdowns_are_segmented() -%}
        {#- Place over the whole extract: the margin of place by segment, and the
            dashboard's indicators by place. -#}
        {%- do sets.append(['la_code']) -%}
        {%- for segment in segment_dimensions() -%}
            {%- do sets.append([segment]) -%}
            {%- do sets.append(['la_code', segment]) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(sets) }}
{%- endmacro %}

{% macro commissioner_dimensions() -%}
    {%- set dims = ['activity_month', 'la_code', 'practice_code', 'age_band', 'sex', 'imd_quintile'] -%}
    {{ return(dims + (segment_dimensions() if breakdowns_are_segmented() else [])) }}
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

{# The leading columns of every commissioner aggregate: its breakdown label, then each dimension. #}
{% macro commissioner_breakdown_columns() -%}
    {{ commissioner_breakdown_label() }} as breakdown,
    {{ commissioner_dimensions() | join(',\n    ') }}
{%- endmacro %}

{#
  Every commissioner aggregate counts events by the same dimensions: the month of the
  event, and the person's place, age on the event date, sex and IMD quintile. These two
  macros are that join, written once: commissioner_dimension_joins() goes after
  `from <events>`, commissioner_dimension_columns() in the select list. `events` is the
  counted relation's alias and `event_date` its date column. The joins expect the
  model's import CTEs `people` (int_persons_demographics_resolved), `extract_window`,
  `sexes` and `age_bands` (and, for an indicator, `segments`: int_persons_segmented),
  so every ref stays at the top of the model. A segment is the person's as at the end
  of the extract window, not at the event's date.
#}
{% macro commissioner_dimension_columns(events, event_date) -%}
        cast(date_trunc('month', {{ events }}.{{ event_date }}) as date) as activity_month,
        people.la_code,
        people.practice_code,
        age_bands.age_band,
        sexes.sex,
        {{ imd_quintile('people.imd_decile') }} as imd_quintile
        {%- if breakdowns_are_segmented() %},
        case segments.is_core20 when true then 'Core20' when false then 'not Core20' end as core20plus5,
        segments.frailty_risk,
        segments.long_term_conditions_band as long_term_conditions
        {%- endif %}
{%- endmacro %}

{% macro commissioner_dimension_joins(events, event_date) -%}
    inner join people
        on {{ events }}.person_id = people.person_id
    cross join extract_window
    left join sexes
        on people.sex_code = sexes.sex_code
    left join age_bands
        on {{ age_in_years('people.birth_month', events ~ '.' ~ event_date) }}
            between age_bands.min_age and age_bands.max_age
    {%- if breakdowns_are_segmented() %}
    left join segments
        on people.person_id = segments.person_id
    {%- endif %}
{%- endmacro %}

{#
  The counted rows of a commissioner aggregate in one call: each row of `events` with
  the dimensions of its `event_date`, then `columns` (SQL expressions, e.g.
  'discharges.still_at_home_on_day_91'), where `where` holds (SQL over `events`, the
  joins' CTEs and extract_window).
#}
{% macro commissioner_rows(events, event_date, columns=[], where='true') -%}
    select
        {{ commissioner_dimension_columns(events, event_date) }}
        {%- for column in columns %},
        {{ column }}
        {%- endfor %}
    from {{ events }}
    {{ commissioner_dimension_joins(events, event_date) }}
    where {{ where }}
{%- endmacro %}

{# The import CTEs commissioner_dimension_joins() reads, for a model that takes them whole. #}
{% macro commissioner_dimension_imports() -%}
    {{ import_ctes({
        'people': ref('int_persons_demographics_resolved'),
        'extract_window': ref('int_extract_window_derived'),
        'age_bands': ref('ref_age_bands'),
        'sexes': ref('ref_sex_codes'),
    }) }}
    {%- if breakdowns_are_segmented() %}
    {{ import_ctes({'segments': ref('int_persons_segmented')}) }}
    {%- endif %}
{%- endmacro %}
