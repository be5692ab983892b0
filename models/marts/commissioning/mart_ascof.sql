{{ suppress_small_numbers(
    ref('int_ascof_aggregated'),
    ['breakdown'] + commissioner_dimensions() + segment_dimensions() + ['denominator_source'],
    ['registered_population_18_to_64', 'registered_population_65_and_over',
     'long_term_admissions_18_to_64', 'long_term_admissions_65_and_over',
     'people_receiving_long_term_support', 'living_at_home_or_with_family'],
    rates={
        'admissions_18_to_64_per_100000':
            ['long_term_admissions_18_to_64', 'registered_population_18_to_64', 100000],
        'admissions_65_and_over_per_100000':
            ['long_term_admissions_65_and_over', 'registered_population_65_and_over', 100000],
        'living_at_home_or_with_family_pct':
            ['living_at_home_or_with_family', 'people_receiving_long_term_support'],
    },
) }}
