{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert') }}
-- Observatory telemetry is at-most-once: taken as delivered.
with

requests as (

    select * from {{ ref('stg_observatory__requests') }}
    {{ new_rows() }}

),

final as (

    select
        event_id,
        event_time,
        ingested_at,
        environment,
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
    from requests

)

select * from final
