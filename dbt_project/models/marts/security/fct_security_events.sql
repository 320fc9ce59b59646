{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert') }}
with

security_events as (

    select * from {{ ref('int_security_events_deduplicated') }}
    {{ new_rows() }}

),

final as (

    select
        event_id,
        event_time,
        ingested_at,
        environment,
        event_type,
        threat_id,
        security_type,
        threat_type,
        threat_level,
        severity_score,
        mitigation_status,
        asset_id,
        source_ip,
        user_id,
        _window_start,
        _window_end,
        _loaded_at
    from security_events

)

select * from final
