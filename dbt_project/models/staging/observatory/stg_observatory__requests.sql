with

source as (

    select * from {{ source('observatory', 'observatory__metrics') }}

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
        request_id,
        model_id,
        asset_id,
        region,
        service,
        latency_ms,
        ttft_ms,
        input_tokens,
        output_tokens,
        status,
        error_code,
        response_bytes,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
