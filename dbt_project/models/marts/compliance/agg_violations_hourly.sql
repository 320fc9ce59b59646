{{ config(
    materialized='incremental',
    unique_key=['bucket', 'policy_id', 'violation_type', 'violation_severity'],
    incremental_strategy='delete+insert',
) }}
-- Violations per policy, type and severity per hour; each violation counted exactly once.
with

violations as (

    select * from {{ ref('fct_violations') }}
    {{ touched_buckets(ref('fct_violations'), 'event_time') }}

),

final as (

    select
        {{ time_bucket('1 hour', 'event_time') }} as bucket,
        policy_id,
        violation_type,
        violation_severity,
        count(*) as violations,
        max(_loaded_at) as _loaded_at
    from violations
    group by 1, 2, 3, 4

)

select * from final
