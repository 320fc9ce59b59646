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
-- Revenue records of the marketplace's extensions, each counted once, in USD.
with

revenue_records as (

    select * from {{ ref('int_revenue_records_deduplicated') }}
    {{ keys_with_new_rows('event_id', ref('stg_marketplace__revenue_records')) }}

),

final as (

    select
        event_id,
        period_start,
        event_time,
        ingested_at,
        environment,
        extension_id,
        amount,
        amount_unit,
        currency,
        amount_usd,
        _window_start,
        _window_end,
        _loaded_at
    from revenue_records

)

select * from final
