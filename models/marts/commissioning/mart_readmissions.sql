{{ suppress_small_numbers(
    ref('int_readmissions_aggregated'),
    dimensions=['breakdown', 'activity_month', 'la_code', 'practice_code', 'age_band', 'sex',
                'imd_quintile'],
    counts=['index_discharges', 'emergency_readmissions'],
    rates={'readmission_rate_pct': ['emergency_readmissions', 'index_discharges']},
) }}
