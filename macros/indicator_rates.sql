{#
  The registered population of a cell of an indicator aggregate (the denominator beside
  every rate), from rows of int_indicator_population_registered unioned under the
  counted events with `is_population` true. A cell of a month counts the list on the
  1st of that month; a cell without a month the list of the extract's middle month
  (`is_reference_month`), since summing the months would count each person once a
  month. `condition` narrows it (e.g. to people aged 65 and over).
#}
{% macro registered_population_count(condition='true') -%}
    case
        when grouping(activity_month) = 0
            then count(*) filter (where is_population and {{ condition }})
        else count(*) filter (where is_population and is_reference_month and {{ condition }})
    end
{%- endmacro %}

{#
  The population rows to union under an indicator's events: the same six dimensions,
  from the 1st of each month. Goes after `from population`, with the import CTEs
  commissioner_dimension_joins() expects.
#}
{% macro registered_population_rows() -%}
    select
        {{ commissioner_dimension_columns('population', 'reference_date') }},
        {{ age_in_years('people.birth_month', 'population.reference_date') }} as age,
        true as is_population,
        population.is_reference_month
    from population
    {{ commissioner_dimension_joins('population', 'reference_date') }}
{%- endmacro %}

{#
  The rows an indicator aggregate counts: the events of `measures` from
  int_indicator_events_selected (imported as `events`), each with the six dimensions of
  its own date and the `extra` columns, and under them the registered population
  (registered_population_rows). Columns: the dimensions, `age` (the population's),
  `is_population`, `is_reference_month`, then `extra` (null on population rows).
#}
{% macro indicator_rows(measures, extra=[]) -%}
    select
        {{ commissioner_dimension_columns('events', 'event_date') }},
        null::integer as age,
        false as is_population,
        false as is_reference_month
        {%- for column in extra %},
        events.{{ column }}
        {%- endfor %}
    from events
    {{ commissioner_dimension_joins('events', 'event_date') }}
    where events.measure in ('{{ measures | join("', '") }}')

    union all

    select *{% for column in extra %}, null{% endfor %}
    from ({{ registered_population_rows() }})
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

{# The import CTEs every indicator aggregate needs: indicator_rows() and the dimension joins read them. #}
{% macro indicator_imports() -%}
    {{ import_ctes({
        'events': ref('int_indicator_events_selected'),
        'population': ref('int_indicator_population_registered'),
    }) }}
    {{ commissioner_dimension_imports() }}
{%- endmacro %}
