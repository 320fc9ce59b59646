{{ config(materialized='incremental', unique_key='event_id', incremental_strategy='delete+insert') }}
with

violations as (

    select * from {{ ref('int_violations_deduplicated') }}
    {{ new_rows() }}

),

final as (

    select
        event_id,
        event_time,
        ingested_at,
        environment,
        violation_id,
        policy_id,
        asset_id,
        violation_severity,
        violation_type,
        description,
        user_id,
        _window_start,
        _window_end,
        _loaded_at
    from violations

)

select * from final
