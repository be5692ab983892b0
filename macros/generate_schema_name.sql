{#
  Layers get plain schema names (staging, intermediate, marts, reference) rather than
  dbt's default <target schema>_<custom schema>, because analysts and the publish step
  address marts by name and there is one target per warehouse file.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
