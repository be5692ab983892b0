{{ config(severity='warn') }}
{#
  A death recorded before the person's birth month means a wrong disposal or discharge
  code, a mistyped date of birth, or two people linked as one. dim_person then gives
  the age at the extract end. A warning for the data engineers, not a failed build.
#}
select person_id, birth_month, death_month, death_recorded_by
from {{ ref('dim_person') }}
where death_month < birth_month
