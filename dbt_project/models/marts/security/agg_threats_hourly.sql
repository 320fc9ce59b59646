{{ config(
    materialized='incremental',
    unique_key=['bucket', 'threat_type', 'threat_level', 'mitigation_status'],
    incremental_strategy='delete+insert',
) }}
-- Security events per threat type, level and mitigation per hour; each counted once.
with

security_events as (

    select * from {{ ref('fct_security_events') }}
    {{ touched_buckets(ref('fct_security_events'), 'event_time') }}

),

final as (

    select
        {{ time_bucket('1 hour', 'event_time') }} as bucket,
        threat_type,
        threat_level,
        mitigation_status,
        count(*) as security_events,
        round(avg(severity_score)::numeric, 3) as mean_severity_score,
        max(_loaded_at) as _loaded_at
    from security_events
    group by 1, 2, 3, 4

)

select * from final
