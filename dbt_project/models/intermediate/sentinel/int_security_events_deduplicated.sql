-- Security events are exactly-once, ordered by timestamp.
with

security_events as (

    select * from {{ ref('stg_sentinel__security_events') }}

),

final as (

    {{ first_delivery('security_events') }}

)

select * from final
