{{ config(
    materialized='fact',
    unique_key='violation_id',
    meta={'fact': {
        'module': 'policy',
        'time_column': 'event_time',
        'index_by': [['violation_id'], ['asset_id'], ['asset_id', 'violation_type']],
    }},
) }}
with

violations as (

    select * from {{ ref('int_violations_deduplicated') }}
    {{ keys_with_new_rows('violation_id', ref('stg_policy__violations')) }}

),

final as (

    select
        violations.event_id,
        violations.event_time,
        violations.ingested_at,
        violations.environment,
        violations.violation_id,
        violations.policy_id,
        violations.asset_id,
        assets.asset_name,
        assets.category as asset_category,
        assets.owner as asset_owner,
        violations.violation_severity,
        violations.violation_type,
        violations.description,
        violations.user_id,
        violations._window_start,
        violations._window_end,
        violations._loaded_at
    from violations
    {{ asset_as_of('violations', 'event_time') }}

)

select * from final
