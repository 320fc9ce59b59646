{{ config(
    materialized='fact',
    unique_key='event_id',
    meta={'fact': {
        'module': 'policy',
        'time_column': 'event_time',
        'index_by': [['asset_id'], ['policy_id']],
    }},
) }}
with

evaluations as (

    select * from {{ ref('int_evaluations_deduplicated') }}
    {{ keys_with_new_rows('event_id', ref('stg_policy__evaluations')) }}

),

final as (

    select
        evaluations.event_id,
        evaluations.event_time,
        evaluations.ingested_at,
        evaluations.environment,
        evaluations.event_type,
        evaluations.evaluation_id,
        evaluations.policy_id,
        evaluations.asset_id,
        assets.asset_name,
        assets.category as asset_category,
        assets.owner as asset_owner,
        evaluations.result,
        evaluations.duration_ms,
        evaluations._window_start,
        evaluations._window_end,
        evaluations._loaded_at
    from evaluations
    {{ asset_as_of('evaluations', 'event_time') }}

)

select * from final
