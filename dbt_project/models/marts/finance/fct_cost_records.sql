{{ config(
    materialized='fact',
    unique_key='cost_record_id',
    meta={'fact': {
        'module': 'costops',
        'time_column': 'usage_start',
        'index_by': [['asset_id'], ['account_id']],
        'time_is_stable': false,
    }},
) }}
-- The latest record_version of each cost record. On an incremental build, a newly landed
-- version competes with the ones already landed, so a late, older version never wins. A
-- correction may move a record's usage hour, so rows are replaced by key alone.
with

latest as (

    select * from {{ ref('int_cost_records_latest') }}
    {{ keys_with_new_rows('cost_record_id', ref('stg_costops__cost_records')) }}

),

final as (

    select
        latest.cost_record_id,
        latest.record_version,
        latest.event_id,
        latest.event_time,
        latest.ingested_at,
        latest.account_id,
        latest.asset_id,
        assets.asset_name,
        assets.category as asset_category,
        assets.owner as asset_owner,
        latest.model_id,
        latest.usage_start,
        latest.usage_end,
        latest.input_tokens,
        latest.output_tokens,
        latest.cost,
        latest.cost_unit,
        latest.cost_usd,
        latest._window_start,
        latest._window_end,
        latest._loaded_at
    from latest
    {{ asset_as_of('latest', 'usage_start') }}

)

select * from final
