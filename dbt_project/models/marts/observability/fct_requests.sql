{{ config(
    materialized='fact',
    unique_key='event_id',
    meta={'fact': {
        'module': 'observatory',
        'time_column': 'event_time',
        'index_by': [['asset_id'], ['asset_id', 'model_id']],
    }},
) }}
-- Observatory telemetry is at-most-once: taken as delivered.
with

-- not materialized: asset_as_of reads it twice, and a plain read of the new rows is
-- cheaper twice than written out once (4 M rows of a large hour spill to disk)
requests as not materialized (

    select * from {{ ref('stg_observatory__requests') }}
    {{ new_rows() }}

),

final as (

    select
        requests.event_id,
        requests.event_time,
        requests.ingested_at,
        requests.environment,
        requests.request_id,
        requests.model_id,
        requests.asset_id,
        assets.asset_name,
        assets.category as asset_category,
        assets.owner as asset_owner,
        requests.region,
        requests.service,
        requests.latency_ms,
        requests.ttft_ms,
        requests.input_tokens,
        requests.output_tokens,
        requests.status,
        requests.error_code,
        requests.response_bytes,
        requests._window_start,
        requests._window_end,
        requests._loaded_at
    from requests
    {{ asset_as_of('requests', 'event_time') }}

)

select * from final
