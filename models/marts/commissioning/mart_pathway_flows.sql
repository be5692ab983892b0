{{ suppress_small_numbers(
    ref('int_pathway_flows_aggregated'),
    dimensions=['breakdown', 'activity_month', 'la_code', 'practice_code', 'age_band', 'sex',
                'imd_quintile', 'from_event_type', 'to_event_type'],
    counts=['transitions', 'people', 'from_event_transitions'],
    rates={'pct_of_from_event': ['transitions', 'from_event_transitions']},
    dependents={'median_days_between': 'transitions'},
) }}
