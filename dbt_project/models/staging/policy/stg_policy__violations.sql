with

source as (

    select * from {{ source('policy', 'policy__violations') }}

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
        violation_id,
        policy_id,
        asset_id,
        violation_severity,
        violation_type,
        description,
        user_id,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
