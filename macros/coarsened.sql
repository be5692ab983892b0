{#
  A person-level mart column that a coarsening option may withhold (see
  src/joinedup/privacy_report/coarsening.py, the one definition of which columns each
  option withholds; the pipeline passes it as var withheld_columns, e.g.
  {"dim_person": ["birth_month", "age"]}). A withheld column keeps its name and type
  and holds only nulls, so analysts' queries keep working; the coarser column beside it
  (age_band, la_code, imd_quintile) carries on. By default nothing is withheld.
#}
{% macro coarsened(column, expression) -%}
    {%- set withheld = var('withheld_columns', {}).get(model.name, []) -%}
    {%- if column in withheld -%}
        (case when false then {{ expression }} end)
    {%- else -%}
        {{ expression }}
    {%- endif -%}
{%- endmacro %}
