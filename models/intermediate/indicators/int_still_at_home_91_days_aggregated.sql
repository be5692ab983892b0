{#
  Older people still at home 91 days after a discharge into reablement, counted for
  commissioners before disclosure control (mart_still_at_home_91_days publishes these
  through suppress_small_numbers): discharges with their full 91 days inside the
  extract, by the month of discharge and the person's place, age at discharge, sex and
  IMD quintile.
#}
with

discharges as (
    select * from {{ ref('int_reablement_discharges_followed_up') }}
),

{{ commissioner_dimension_imports() }}

followed_up as (
    {{ commissioner_rows(
        'discharges', 'discharge_date', ['discharges.still_at_home_on_day_91'],
        where='discharges.has_full_follow_up
            and discharges.discharge_date >= extract_window.extract_start_date',
    ) }}
)

select
    {{ commissioner_breakdown_columns() }},
    count(*) as discharges_into_reablement,
    -- count_if is null over no rows (the total of an extract without such a discharge).
    coalesce(count_if(still_at_home_on_day_91), 0) as still_at_home
from followed_up
{{ commissioner_group_by() }}
