with

source as (

    select * from {{ source('registry', 'registry__events') }}

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
        asset_id,
        asset_name,
        version,
        actor,
        category,
        owner,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
