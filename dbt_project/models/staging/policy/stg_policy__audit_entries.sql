with

source as (

    select * from {{ source('policy', 'policy__audit') }}

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
        audit_id,
        policy_id,
        action,
        actor_id,
        resource,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
