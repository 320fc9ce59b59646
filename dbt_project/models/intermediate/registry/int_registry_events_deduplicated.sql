-- The registry delivers at least once: a redelivery (same event_id, within 5 minutes by
-- contract) is the same event. Keep its first delivery.
with

events as (

    select * from {{ ref('stg_registry__events') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by event_id order by ingested_at, _window_start
        ) as delivery_number
    from events

),

final as (

    select * from ranked where delivery_number = 1

)

select * from final
