with

source as (

    select * from {{ source('sentinel', 'sentinel__security_events') }}

),

renamed as (

    select
        event_id,
        event_time,
        ingested_at,
        source_module,
        event_type,
        schema_version,
        event_severity,
        environment,
        tags,
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
    from source

)

select * from renamed
