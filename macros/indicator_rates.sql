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
