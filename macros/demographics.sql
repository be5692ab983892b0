{#
  Age in completed years from a birth month (YYYY-MM): the pseudonymised zone never
  holds the day of birth, so the birthday is taken to fall on the 1st of the month.
  This overstates the age by a year only during part of the birth month.
#}
{% macro age_in_years(birth_month, on_date) -%}
    (
        date_part('year', {{ on_date }})
        - cast(left({{ birth_month }}, 4) as integer)
        - case
            when date_part('month', {{ on_date }}) < cast(right({{ birth_month }}, 2) as integer)
                then 1
            else 0
        end
    )
{%- endmacro %}

{# IMD quintile from decile, keeping the IMD convention that 1 is the most deprived. #}
{% macro imd_quintile(imd_decile) -%}
    cast(ceil({{ imd_decile }} / 2.0) as integer)
{%- endmacro %}
