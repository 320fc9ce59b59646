{{ config(
    materialized='fact',
    unique_key='event_id',
    meta={'fact': {
        'module': 'marketplace',
        'time_column': 'period_start',
        'index_by': [['extension_id']],
        'segment_by': 'extension_id',
    }},
) }}
-- One usage report per extension and hour (period_start), each counted once. Facts are
-- placed at the usage period they report, not at the time they were reported.
with

usage_reports as (

    select * from {{ ref('int_usage_reports_deduplicated') }}
    {{ keys_with_new_rows('event_id', ref('stg_marketplace__usage_reports')) }}

),

final as (

    select
        event_id,
        period_start,
        event_time,
        ingested_at,
        environment,
        extension_id,
        invocations,
        active_tenants,
        _window_start,
        _window_end,
        _loaded_at
    from usage_reports

)

select * from final
