{{ config(materialized='incremental', unique_key='cost_record_id', incremental_strategy='delete+insert') }}
-- depends_on: {{ ref('stg_costops__cost_records') }}
-- The latest record_version of each cost record. On an incremental build, a newly landed
-- version competes with the one already here, so a late, older version never wins.
with

latest as (

    select * from {{ ref('int_cost_records_latest') }}
    {% if is_incremental() %}
    where cost_record_id in (
        select cost_record_id from {{ ref('stg_costops__cost_records') }} {{ new_rows() }}
    )
    {% endif %}

),

final as (

    select
        cost_record_id,
        record_version,
        event_id,
        event_time,
        ingested_at,
        account_id,
        asset_id,
        model_id,
        usage_start,
        usage_end,
        input_tokens,
        output_tokens,
        cost,
        cost_unit,
        cost_usd,
        _window_start,
        _window_end,
        _loaded_at
    from latest

)

select * from final
