{{ suppress_small_numbers(
    ref('int_still_at_home_91_days_aggregated'),
    dimensions=['breakdown', 'activity_month', 'la_code', 'practice_code', 'age_band', 'sex',
                'imd_quintile', 'core20plus5', 'frailty_risk', 'long_term_conditions'],
    counts=['discharges_into_reablement', 'still_at_home'],
    rates={'still_at_home_pct': ['still_at_home', 'discharges_into_reablement']},
) }}
