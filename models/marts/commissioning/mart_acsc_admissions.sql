{{ suppress_small_numbers(
    ref('int_acsc_admissions_aggregated'),
    dimensions=['breakdown', 'activity_month', 'la_code', 'practice_code', 'age_band', 'sex',
                'imd_quintile', 'core20plus5', 'frailty_risk', 'long_term_conditions',
                'denominator_source'],
    counts=['registered_population', 'chronic_acsc_admissions'],
    rates={
        'chronic_acsc_admissions_per_100000':
            ['chronic_acsc_admissions', 'registered_population', 100000],
    },
) }}
