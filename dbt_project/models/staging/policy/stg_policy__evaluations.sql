with

source as (

    select * from {{ source('policy', 'policy__evaluations') }}

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
        evaluation_id,
        policy_id,
        asset_id,
        result,
        duration_ms,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
