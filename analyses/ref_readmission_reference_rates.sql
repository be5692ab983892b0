{#
  How seeds/reference/ref_readmission_reference_rates.csv was made: the readmission
  rate of every stratum (age band, sex, admission method group, ICD-10 chapter) of the
  index spells of a whole synthetic extract, the standard population of
  mart_readmissions_30_day's indirect standardisation. `dbt compile --select
  ref_readmission_reference_rates` on a built warehouse, then run the compiled SQL and
  write it out as the seed (docs/analyst-guide.md, mart_readmissions_30_day).
#}
with

{{ import_ctes({'stays': ref('int_readmissions_30_day_index_stays')}) }}
{{ commissioner_dimension_imports() }}

strata as (
    select
        coalesce(age_bands.age_band, 'unknown') as age_band,
        coalesce(sexes.sex, 'unknown') as sex,
        stays.admission_group,
        stays.diagnosis_group,
        stays.is_readmitted
    from stays
    {{ commissioner_dimension_joins('stays', 'discharge_date') }}
    where stays.is_index
)

select
    age_band,
    sex,
    admission_group,
    diagnosis_group,
    count(*) as index_spells,
    round(count(*) filter (where is_readmitted) / count(*), 6) as reference_rate
from strata
group by all
order by all
