{{ suppress_small_numbers(
    ref('int_discharges_to_social_care_aggregated'),
    dimensions=['breakdown', 'activity_month', 'la_code', 'practice_code', 'age_band', 'sex',
                'imd_quintile'],
    counts=['discharges', 'discharges_to_social_care', 'discharges_to_social_care_within_7_days'],
    rates={
        'social_care_rate_pct': ['discharges_to_social_care', 'discharges'],
        'within_7_days_pct': ['discharges_to_social_care_within_7_days', 'discharges_to_social_care'],
    },
    dependents={'median_days_to_social_care': 'discharges_to_social_care'},
) }}
