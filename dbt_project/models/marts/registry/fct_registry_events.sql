{{ config(
    materialized='fact',
    unique_key='event_id',
    meta={'fact': {
        'module': 'registry',
        'time_column': 'event_time',
        'index_by': [['asset_id'], ['asset_id', 'event_type']],
        'asset_columns': {'asset_name': 'coalesce(facts.asset_name, assets.asset_name)'},
    }},
) }}
-- Registry lifecycle events, each once (the registry redelivers within 5 minutes).
-- An asset state delivered after an event fills in a name the event lacks
-- (meta.fact.asset_columns), and does not replace one it has.
with

events as (

    select * from {{ ref('int_registry_events_deduplicated') }}
    {{ keys_with_new_rows('event_id', ref('stg_registry__events')) }}

),

final as (

    select
        events.event_id,
        events.event_time,
        events.ingested_at,
        events.environment,
        events.event_type,
        events.asset_id,
        -- the event names its asset as it was then; the dimension fills in where it does not
        coalesce(events.asset_name, assets.asset_name) as asset_name,
        assets.category as asset_category,
        assets.owner as asset_owner,
        events.version,
        events.actor,
        events._window_start,
        events._window_end,
        events._loaded_at
    from events
    {{ asset_as_of('events', 'event_time') }}

)

select * from final
