{#
  The denominator of every indicator rate, grouped once by the commissioner breakdowns
  (the indicator aggregates join their event cells to it: indicator_cells_joined()):
  the registered population (or ONS estimates, var indicator_denominator) of each cell,
  in all and aged 18 to 64 and 65 and over, counted as registered_population_count()
  does: a cell of a month on the 1st of that month, a cell without a month in the
  extract's middle month.
#}
with

{{ import_ctes({'population': ref('int_indicator_population_registered')}) }}
{{ commissioner_dimension_imports() }}

counted as (
    {{ registered_population_rows() }}
)

select
    {{ commissioner_breakdown_columns() }},
    {{ registered_population_count() }} as registered_population,
    {{ registered_population_count('age between 18 and 64') }} as registered_population_18_to_64,
    {{ registered_population_count('age >= 65') }} as registered_population_65_and_over
from counted
{{ commissioner_group_by() }}
