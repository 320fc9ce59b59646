{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert') }}
with

evaluations as (

    select * from {{ ref('int_evaluations_deduplicated') }}
    {{ new_rows() }}

),

final as (

    select
        event_id,
        event_time,
        ingested_at,
        environment,
        event_type,
        evaluation_id,
        policy_id,
        asset_id,
        result,
        duration_ms,
        _window_start,
        _window_end,
        _loaded_at
    from evaluations

)

select * from final
