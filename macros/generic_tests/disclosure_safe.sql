{#
  A published count is safe: never from 1 to suppression_threshold - 1, and a multiple
  of rounding_base. Guards the marts against a model that forgets the suppression macro.
#}
{% test disclosure_safe(model, column_name) %}
    {%- set threshold = var('suppression_threshold') | int -%}
    {%- set base = var('rounding_base') | int %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} between 1 and {{ threshold - 1 }}
    or {{ column_name }} % {{ base }} <> 0
{% endtest %}
