{{ config(
    materialized='fact',
    unique_key='event_id',
    meta={'fact': {
        'module': 'sentinel',
        'time_column': 'event_time',
        'index_by': [['asset_id'], ['asset_id', 'threat_type']],
    }},
) }}
with

security_events as (

    select * from {{ ref('int_security_events_deduplicated') }}
    {{ keys_with_new_rows('event_id', ref('stg_sentinel__security_events')) }}

),

final as (

    select
        security_events.event_id,
        security_events.event_time,
        security_events.ingested_at,
        security_events.environment,
        security_events.event_type,
        security_events.threat_id,
        security_events.security_type,
        security_events.threat_type,
        security_events.threat_level,
        security_events.severity_score,
        security_events.mitigation_status,
        security_events.asset_id,
        assets.asset_name,
        assets.category as asset_category,
        assets.owner as asset_owner,
        security_events.source_ip,
        security_events.user_id,
        security_events._window_start,
        security_events._window_end,
        security_events._loaded_at
    from security_events
    {{ asset_as_of('security_events', 'event_time') }}

)

select * from final
