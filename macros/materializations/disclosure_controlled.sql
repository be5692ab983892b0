{#
  The commissioner marts' materialization (dbt_project.yml sets it on
  models/marts/commissioning/): a table, built as `table` builds one, that secondary
  suppression has protected against differencing before it takes the mart's name. So a
  plain `dbt build` gives the marts exactly as they are published, and the marts' data
  tests run on them as published.

  1. The model's SQL (the primary rule: suppress_small_numbers) is built into
     <mart>__dbt_tmp.
  2. Secondary suppression (joinedup.privacy.secondary_suppression.suppress_in_dbt) runs
     on that table: audit, withhold, audit again, to a fixed point. That is a loop, which
     Jinja SQL cannot express, so it runs in Python, as dbt-duckdb runs a Python model: on
     the model's own connection and transaction. What each column is comes from the
     columns' meta, the rule's threshold and rounding base from the mart's meta (set from
     the vars in dbt_project.yml), both handed over as the model's node.
  3. The table takes the mart's name, its descriptions are persisted, the transaction
     commits. A failure at any step leaves the previous mart as it was.

  The node's result says what secondary suppression did (the cells it withheld, in how
  many rounds); joinedup.warehouse.build_warehouse reports it per mart.
#}
{% materialization disclosure_controlled, adapter='duckdb', supported_languages=['sql'] %}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
  {%- set preexisting_intermediate_relation = load_cached_relation(intermediate_relation) -%}
  {%- set backup_relation_type = 'table' if existing_relation is none else existing_relation.type -%}
  {%- set backup_relation = make_backup_relation(target_relation, backup_relation_type) -%}
  {%- set preexisting_backup_relation = load_cached_relation(backup_relation) -%}
  {%- set grant_config = config.get('grants') -%}

  {{ drop_relation_if_exists(preexisting_intermediate_relation) }}
  {{ drop_relation_if_exists(preexisting_backup_relation) }}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% call statement('main') -%}
    {{ create_table_as(False, intermediate_relation, compiled_code) }}
  {%- endcall %}

  {%- set summary_table = '_joinedup_secondary_suppression' -%}
  {% call statement('secondary_suppression', language='python') -%}
    {{ disclosure_controlled_python(intermediate_relation, summary_table) }}
  {%- endcall %}
  {%- set summary = run_query(
      'select summary from ' ~ summary_table).columns[0].values()[0] -%}
  {% do run_query('drop table ' ~ summary_table) %}

  {% if existing_relation is not none %}
    {{ adapter.rename_relation(existing_relation, backup_relation) }}
  {% endif %}
  {{ adapter.rename_relation(intermediate_relation, target_relation) }}
  {% do create_indexes(target_relation) %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) %}
  {% do apply_grants(target_relation, grant_config, should_revoke=should_revoke) %}
  {% do persist_docs(target_relation, model) %}

  -- `COMMIT` happens here
  {{ adapter.commit() }}
  {{ drop_relation_if_exists(backup_relation) }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {%- set found = fromjson(summary) -%}
  {% do store_raw_result(
      'main',
      message='OK, secondary suppression withheld ' ~ found['secondary_cells'] ~ ' more cells in '
              ~ found['rounds'] ~ ' rounds',
      code=summary,
      rows_affected=found['secondary_cells']) %}
  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#
  The Python that dbt-duckdb runs for step 2: a module with model(dbt, session), which
  returns a relation, and materialize(df, con), which dbt-duckdb calls with it (here
  there is nothing to write: the table was changed in place). dbtObj is what dbt-duckdb
  hands to model().
#}
{% macro disclosure_controlled_python(relation, summary_table) -%}
{%- set node = {
    'name': model.name,
    'patch_path': model.patch_path,
    'original_file_path': model.original_file_path,
    'config': {'meta': model.config.meta},
    'columns': model.columns,
} -%}
import json

from joinedup.privacy.secondary_suppression import suppress_in_dbt

NODE = json.loads({{ tojson(tojson(node)) }})


class dbtObj:
    def __init__(self, load_df_function):
        self.load_df_function = load_df_function


def model(dbt, session):
    suppress_in_dbt(
        session,
        NODE,
        schema={{ tojson(relation.schema) }},
        table={{ tojson(relation.identifier) }},
        summary_table={{ tojson(summary_table) }},
    )
    return session.table({{ tojson(summary_table) }})


def materialize(df, con):
    pass
{%- endmacro %}
