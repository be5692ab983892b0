{#
  The denominator of the indicators' rates per head of population, var
  indicator_denominator: `registered` (default), the registered population of the GP
  extract (int_indicator_population_registered), or `ons`, ONS mid-year estimates by
  local authority, sex and age (int_indicator_population_ons), as the national BCF,
  ASCOF and Outcomes Framework figures use. ONS publishes no population by practice,
  IMD or segment, so with `ons` a cell broken down by one of those has no denominator
  (null) rather than one that is not the cell's.
#}
{% macro indicator_denominator() -%}
    {%- set source = var('indicator_denominator', 'registered') -%}
    {%- if source not in ('registered', 'ons') -%}
        {{ exceptions.raise_compiler_error(
            'var indicator_denominator is ' ~ tojson(source) ~ '; it must be registered (the '
            ~ 'GP extract\'s registered population) or ons (ONS mid-year estimates, seed '
            ~ 'ref_ons_mid_year_population): set it in dbt_project.yml vars or with --vars') }}
    {%- endif -%}
    {{ return(source) }}
{%- endmacro %}

{# The dimensions an ONS estimate has; the others are null on its rows. #}
{% macro ons_population_dimensions() -%}
    {{ return(['activity_month', 'la_code', 'age_band', 'sex']) }}
{%- endmacro %}

{# The denominator's source, as a column beside every rate per head of population. #}
{% macro population_denominator_source() -%}
    {%- if indicator_denominator() == 'ons' -%}
        'ONS mid-year population estimates'
    {%- else -%}
        'registered population (GP extract)'
    {%- endif -%}
{%- endmacro %}

{#
  The population of a cell (the denominator beside every indicator rate), grouped in
  int_indicator_population_cells from the rows of registered_population_rows()
  (`is_population` true), each weighing `population` people (1 for a registered
  person, the estimate for an ONS row). A cell of a month counts the population on the
  1st of that month; a cell without a month that of the extract's middle month
  (`is_reference_month`), since summing the months would count each person once a
  month. `condition` narrows it (e.g. to people aged 65 and over).
#}
{% macro registered_population_count(condition='true') -%}
    case
        {%- if indicator_denominator() == 'ons' %}
        when {{ population_is_undefined() }}
            then null
        {%- endif %}
        when grouping(activity_month) = 0
            then coalesce(sum(population) filter (where is_population and {{ condition }}), 0)
        else coalesce(sum(population) filter (
            where is_population and is_reference_month and {{ condition }}), 0)
    end
{%- endmacro %}

{#
  True in a grouped cell that has no population because ONS publishes none by one of its
  dimensions (practice, IMD, segment); false throughout with the registered denominator.
#}
{% macro population_is_undefined() -%}
    {%- if indicator_denominator() == 'ons' -%}
        ({% for dim in commissioner_dimensions() if dim not in ons_population_dimensions() -%}
            grouping({{ dim }}) = 0{{ ' or ' if not loop.last }}
        {%- endfor %})
    {%- else -%}
        false
    {%- endif -%}
{%- endmacro %}

{#
  The population rows int_indicator_population_cells groups: the same dimensions as an
  indicator's events, from the 1st of each month, then age, is_population,
  is_reference_month and population (the people the row stands for). Registered: after `from population`, with the
  import CTEs commissioner_dimension_joins() expects. ONS: from
  int_indicator_population_ons, ref'd here so that the model that groups these
  rows has the option without importing it; its dimensions ONS has no figure by are
  null.
#}
{% macro registered_population_rows() -%}
    {%- set ons = ref('int_indicator_population_ons') -%}
    {%- if indicator_denominator() == 'ons' -%}
    {%- set columns = {
        'activity_month': 'ons.reference_date',
        'la_code': 'ons.la_code',
        'age_band': 'age_bands.age_band',
        'sex': 'sexes.sex',
    } -%}
    select
        {%- for dim in commissioner_dimensions() %}
        {{ columns.get(dim, 'null') }} as {{ dim }},
        {%- endfor %}
        ons.age,
        true as is_population,
        ons.is_reference_month,
        ons.population
    from {{ ons }} as ons
    left join sexes
        on ons.sex_code = sexes.sex_code
    left join age_bands
        on ons.age between age_bands.min_age and age_bands.max_age
    {%- else -%}
    select
        {{ commissioner_dimension_columns('population', 'reference_date') }},
        {{ age_in_years('people.birth_month', 'population.reference_date') }} as age,
        true as is_population,
        population.is_reference_month,
        1 as population
    from population
    {{ commissioner_dimension_joins('population', 'reference_date') }}
    {%- endif -%}
{%- endmacro %}

{#
  The months of the extract, each as the 1st (`reference_date`), the middle one marked
  `is_reference_month`: the months a population is counted on. Expects the import CTE
  `extract_window`.
#}
{% macro extract_months() -%}
    select
        cast(month_start as date) as reference_date,
        cast(month_start as date) = cast(date_trunc(
            'month',
            extract_window.extract_start_date
            + cast((extract_window.extract_end_date - extract_window.extract_start_date) / 2 as integer)
        ) as date) as is_reference_month
    from extract_window
    cross join generate_series(
        cast(date_trunc('month', extract_window.extract_start_date) as timestamp),
        cast(extract_window.extract_end_date as timestamp),
        interval 1 month
    ) as series(month_start)
{%- endmacro %}

{#
  Import CTEs, one per relation, in the order given ({name: ref(...)}): every ref of the
  model stays at its top, written once.
#}
{% macro import_ctes(imports) -%}
    {%- for name, relation in imports.items() %}
{{ name }} as (
    select * from {{ relation }}
),
    {% endfor -%}
{%- endmacro %}


{#
  An indicator aggregate in two halves, so that the population (the bulk of the rows:
  every registered person once a month) is grouped by the breakdown sets once, in
  int_indicator_population_cells, rather than once in every indicator aggregate with the
  events unioned under it. The aggregate groups its events alone into `event_cells`
  (with `population_is_undefined`), and these macros join them to the imported
  `population_cells`: a full outer join on the breakdown and every dimension (null
  matching null), so the cells are those of the union, as one grouping would give.
#}
{% macro indicator_event_rows(measures, extra=[]) -%}
    {%- set columns = [] -%}
    {%- for column in extra -%}{%- do columns.append('events.' ~ column) -%}{%- endfor %}
    {{ commissioner_rows(
        'events', 'event_date', columns,
        where="events.measure in ('" ~ (measures | join("', '")) ~ "')",
    ) }}
{%- endmacro %}

{# The leading columns of a joined indicator cell: its breakdown, then each dimension. #}
{% macro indicator_cell_keys() -%}
    coalesce(event_cells.breakdown, population_cells.breakdown) as breakdown
    {%- for dim in commissioner_dimensions() %},
    coalesce(event_cells.{{ dim }}, population_cells.{{ dim }}) as {{ dim }}
    {%- endfor %}
{%- endmacro %}

{#
  A population column of a joined cell: the population's where it has the cell, else
  what grouping the events with the population would have given (0, or null where the
  population is undefined).
#}
{% macro population_cell(column) -%}
    case
        when population_cells.breakdown is not null then population_cells.{{ column }}
        when event_cells.population_is_undefined then null
        else 0
    end
{%- endmacro %}

{# An event count of a joined cell: 0 in a cell only the population has. #}
{% macro event_cell_count(column) -%}
    coalesce(event_cells.{{ column }}, 0)
{%- endmacro %}

{% macro indicator_cells_joined() -%}
    from event_cells
    full outer join population_cells
        on event_cells.breakdown = population_cells.breakdown
        {%- for dim in commissioner_dimensions() %}
        and event_cells.{{ dim }} is not distinct from population_cells.{{ dim }}
        {%- endfor %}
{%- endmacro %}

{# The import CTEs of an indicator aggregate joined to the population's cells. #}
{% macro indicator_cell_imports(events='int_indicator_events_selected') -%}
    {{ import_ctes({
        'events': ref(events),
        'population_cells': ref('int_indicator_population_cells'),
    }) }}
    {{ commissioner_dimension_imports() }}
{%- endmacro %}
