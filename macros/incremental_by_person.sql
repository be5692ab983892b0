{#
  The event facts are incremental by person (issue 23): a build on the warehouse an
  earlier build left (joinedup.warehouse.build carries it over) deletes the rows of the
  persons int_person_input_changes marks changed or gone, and computes those persons'
  rows again; every other person's rows stay as they are. A person's rows depend on that
  person's records only, so this gives the rows a full build gives. A build on a new
  warehouse (or `dbt build --full-refresh`, or JOINEDUP_FULL_REBUILD) computes them all.

  Each model takes its config from incremental_by_person() (which makes
  delete_changed_persons() its pre_hook), restricts its inputs with
  changed_persons_only(), and names its dependency for dbt's graph with
    -- depends_on: {{ ref('int_person_input_changes') }}
  (the refs below are rendered only on an incremental build, after parsing).
#}

{% macro incremental_by_person() %}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'append',
        'on_schema_change': 'fail',
        'pre_hook': '{{ delete_changed_persons() }}',
    }) }}
{% endmacro %}

{% macro delete_changed_persons() %}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where person_id in ({{ _changed_persons() }})
    {%- endif -%}
{% endmacro %}

{% macro changed_persons_only(person_id) %}
    {%- if is_incremental() -%}
        where {{ person_id }} in ({{ _changed_persons() }})
    {%- endif -%}
{% endmacro %}

{% macro _changed_persons() -%}
    select person_id from {{ ref('int_person_input_changes') }} where changed
{%- endmacro %}
