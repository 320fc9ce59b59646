-- The registry delivers at least once: a redelivery (same event_id, within 5 minutes by
-- contract) is the same event. Keep its first delivery.
with

events as (

    select * from {{ ref('stg_registry__events') }}

),

final as (

    {{ first_delivery('events') }}

)

select * from final
