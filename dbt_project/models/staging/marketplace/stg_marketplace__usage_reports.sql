with

source as (

    select * from {{ source('marketplace', 'marketplace__usage') }}

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
        extension_id,
        period_start,
        invocations,
        active_tenants,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
