-- Security events are exactly-once, ordered by timestamp.
with

security_events as (

    select * from {{ ref('stg_sentinel__security_events') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by event_id order by ingested_at, _window_start
        ) as delivery_number
    from security_events

),

final as (

    select * from ranked where delivery_number = 1

)

select * from final
