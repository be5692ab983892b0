with

people as (
    select * from {{ ref('int_persons_demographics_resolved') }}
),

events as (
    select * from {{ ref('int_care_events_unioned') }}
),

extract_window as (
    select * from {{ ref('int_extract_window_derived') }}
),

age_bands as (
    select * from {{ ref('ref_age_bands') }}
),

sexes as (
    select * from {{ ref('ref_sex_codes') }}
),

deaths as (
    select
        person_id,
        event_start_date as date_of_death,
        case event_detail
            when 'ae_disposal_died' then 'ae_attendance'
            else 'hospital_discharge'
        end as death_recorded_by
    from events
    where event_type = 'death'
),

aged as (
    select
        people.*,
        deaths.date_of_death,
        deaths.death_recorded_by,
        -- Age at death, unless the recorded death precedes the birth month: then one of the
        -- two is wrong (see the warning test assert_no_death_before_birth) and the age is
        -- taken at the extract end.
        {{ age_in_years(
            'people.birth_month',
            "case when strftime(deaths.date_of_death, '%Y-%m') >= people.birth_month
                then least(extract_window.extract_end_date, deaths.date_of_death)
                else extract_window.extract_end_date end"
        ) }} as age
    from people
    cross join extract_window
    left join deaths
        on people.person_id = deaths.person_id
)

select
    aged.person_id,
    sexes.sex,
    aged.sex_code,
    {{ coarsened('birth_month', 'aged.birth_month') }} as birth_month,
    {{ coarsened('age', 'aged.age') }} as age,
    age_bands.age_band,
    {{ coarsened('lsoa_code', 'aged.lsoa_code') }} as lsoa_code,
    {{ coarsened('imd_decile', 'aged.imd_decile') }} as imd_decile,
    {{ imd_quintile('aged.imd_decile') }} as imd_quintile,
    aged.practice_code,
    aged.la_code,
    -- Month of death only: a death notice gives the exact date, which with the month of
    -- birth and the area singles people out (the privacy report's death scenario).
    strftime(aged.date_of_death, '%Y-%m') as death_month,
    aged.date_of_death is not null as is_deceased,
    aged.death_recorded_by,
    aged.gp_record_count > 0 as has_gp_record,
    aged.hospital_record_count > 0 as has_hospital_record,
    aged.social_care_record_count > 0 as has_social_care_record,
    aged.gp_record_count,
    aged.hospital_record_count,
    aged.social_care_record_count,
    aged.sex_source,
    aged.birth_month_source,
    aged.area_source
from aged
left join sexes
    on aged.sex_code = sexes.sex_code
left join age_bands
    on aged.age between age_bands.min_age and age_bands.max_age
