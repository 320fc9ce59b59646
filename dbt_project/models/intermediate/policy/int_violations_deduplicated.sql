-- Violations are exactly-once: each counted once however often delivered or re-pulled.
with

violations as (

    select * from {{ ref('stg_policy__violations') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by event_id order by ingested_at, _window_start
        ) as delivery_number
    from violations

),

final as (

    select * from ranked where delivery_number = 1

)

select * from final
