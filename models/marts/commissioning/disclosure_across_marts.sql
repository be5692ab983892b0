{#
  Secondary suppression over every commissioner mart together, after all of them
  (macros/materializations/disclosure_across_marts.sql): a count declared `same_as` a
  count of another mart is withheld in both wherever it is withheld in either. Its
  table (schema disclosure, never published) holds the pass's summary: cells withheld
  per mart and rounds, no counts.
#}
{{ config(materialized='disclosure_across_marts', schema='disclosure', persist_docs={}) }}
-- depends_on: {{ ref('mart_discharge_to_social_care') }}
-- depends_on: {{ ref('mart_pathway_flows') }}
-- depends_on: {{ ref('mart_readmissions') }}
-- depends_on: {{ ref('mart_still_at_home_91_days') }}
-- depends_on: {{ ref('mart_bcf_metrics') }}
-- depends_on: {{ ref('mart_acsc_admissions') }}
-- depends_on: {{ ref('mart_readmissions_30_day') }}
-- depends_on: {{ ref('mart_ascof') }}
select 1 as placeholder
