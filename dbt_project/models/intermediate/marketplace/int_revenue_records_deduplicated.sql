-- Marketplace revenue is at-least-once: a redelivered record (same event_id) is the same
-- revenue. Keep its first delivery, so that no amount is counted twice.
with

revenue_records as (

    select * from {{ ref('stg_marketplace__revenue_records') }}

),

final as (

    {{ first_delivery('revenue_records') }}

)

select * from final
