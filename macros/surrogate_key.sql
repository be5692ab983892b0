{#
  A stable key from natural-key columns, written here because dbt_utils cannot be
  installed offline. Nulls get a marker so ('a', null) and (null, 'a') differ.
#}
{% macro surrogate_key(columns) -%}
    md5(concat_ws('|'
    {%- for column in columns -%}
        , coalesce(cast({{ column }} as varchar), '_dbt_null_')
    {%- endfor -%}
    ))
{%- endmacro %}
