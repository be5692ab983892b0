{{ suppress_small_numbers(
    ref('int_bcf_metrics_aggregated'),
    dimensions=['breakdown', 'activity_month', 'la_code', 'practice_code', 'age_band', 'sex',
                'imd_quintile', 'core20plus5', 'frailty_risk', 'long_term_conditions',
                'denominator_source'],
    counts=['registered_population_65_and_over', 'emergency_admissions_65_and_over',
            'adult_discharges', 'discharges_with_ready_date', 'discharged_on_ready_date',
            'delayed_discharges', 'care_home_admissions_65_and_over'],
    rates={
        'emergency_admissions_per_100000':
            ['emergency_admissions_65_and_over', 'registered_population_65_and_over', 100000],
        'discharged_on_ready_date_pct': ['discharged_on_ready_date', 'discharges_with_ready_date'],
        'care_home_admissions_per_100000':
            ['care_home_admissions_65_and_over', 'registered_population_65_and_over', 100000],
    },
    dependents={
        'mean_delay_days': 'discharges_with_ready_date',
        'mean_delay_days_among_delayed': 'delayed_discharges',
    },
) }}
