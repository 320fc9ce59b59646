with

evaluations as (

    select * from {{ ref('stg_policy__evaluations') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by event_id order by ingested_at, _window_start
        ) as delivery_number
    from evaluations

),

final as (

    select * from ranked where delivery_number = 1

)

select * from final
