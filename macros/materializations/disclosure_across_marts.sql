{#
  The last node of the commissioner marts (models/marts/commissioning/disclosure_across_marts.sql):
  secondary suppression over every commissioner mart together. Each mart's own
  materialization (disclosure_controlled) protects it against differencing within it;
  some counts are the same quantity in two marts (a count's meta `same_as`), so a cell
  withheld in one mart could be published in the other. Here, on the build's connection
  and in one transaction, joinedup.privacy.secondary_suppression.suppress_across_marts_in_dbt
  audits all the marts at once, twin cells tied equal where their true values (the
  marts' model inputs) are, and withholds cells in the marts in place to the fixed point
  where no withheld cell is recovered exactly. A failure leaves the marts as built.

  Every model materialized disclosure_controlled takes part; the node must ref each of
  them (so dbt runs it after them), or it stops naming the ones it lacks. Its own table
  holds the summary (cells withheld per mart, rounds; no counts), which
  joinedup.warehouse.build_warehouse reports.
#}
{% materialization disclosure_across_marts, adapter='duckdb', supported_languages=['sql'] %}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set marts = [] -%}
  {%- set missing = [] -%}
  {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and node.config.materialized == 'disclosure_controlled' -%}
    {%- if node.unique_id not in model.depends_on.nodes -%}
      {%- do missing.append(node.name) -%}
    {%- endif -%}
    {%- set inputs = [] -%}
    {%- for uid in node.depends_on.nodes if uid.startswith('model.') -%}
      {%- set n = graph.nodes[uid] -%}
      {%- do inputs.append(api.Relation.create(
            database=n.database, schema=n.schema, identifier=(n.alias or n.name)) | string) -%}
    {%- endfor -%}
    {%- if inputs | length != 1 -%}
      {{ exceptions.raise_compiler_error(
          node.name ~ ' must read exactly one model (its unsuppressed aggregate) for the '
          ~ 'pass across marts to know its true counts; it reads ' ~ inputs) }}
    {%- endif -%}
    {%- do marts.append({
        'node': {
            'name': node.name,
            'patch_path': node.patch_path,
            'original_file_path': node.original_file_path,
            'config': {'meta': node.config.meta},
            'columns': node.columns,
        },
        'schema': node.schema,
        'table': node.alias or node.name,
        'unsuppressed': inputs[0],
    }) -%}
  {%- endfor -%}
  {%- if missing -%}
    {{ exceptions.raise_compiler_error(
        model.original_file_path ~ ' must ref every commissioner mart so that it runs after '
        ~ 'them; add -- depends_on: {{ ref(...) }} for ' ~ (missing | sort | join(', '))) }}
  {%- endif -%}
  {%- set marts = marts | sort(attribute='table') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {%- set summary_table = '_joinedup_across_marts' -%}
  {% call statement('across_marts', language='python') -%}
    {{ disclosure_across_marts_python(marts, summary_table) }}
  {%- endcall %}
  {%- set summary = run_query(
      'select summary from ' ~ summary_table).columns[0].values()[0] -%}
  {% call statement('main') -%}
    create or replace table {{ target_relation }} as select * from {{ summary_table }}
  {%- endcall %}
  {% do run_query('drop table ' ~ summary_table) %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {%- set found = fromjson(summary) -%}
  {% do store_raw_result(
      'main',
      message='OK, secondary suppression across marts withheld ' ~ found['secondary_cells']
              ~ ' more cells in ' ~ found['rounds'] ~ ' rounds',
      code=summary,
      rows_affected=found['secondary_cells']) %}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{# The Python dbt-duckdb runs (as disclosure_controlled_python does for one mart). #}
{% macro disclosure_across_marts_python(marts, summary_table) -%}
import json

from joinedup.privacy.secondary_suppression import suppress_across_marts_in_dbt

MARTS = json.loads({{ tojson(tojson(marts)) }})


class dbtObj:
    def __init__(self, load_df_function):
        self.load_df_function = load_df_function


def model(dbt, session):
    suppress_across_marts_in_dbt(session, MARTS, summary_table={{ tojson(summary_table) }})
    return session.table({{ tojson(summary_table) }})


def materialize(df, con):
    pass
{%- endmacro %}
