-- Marketplace usage is at-least-once: a redelivered report (same event_id) is the same
-- report. Keep its first delivery, so that invocations are counted once.
with

usage_reports as (

    select * from {{ ref('stg_marketplace__usage_reports') }}

),

final as (

    {{ first_delivery('usage_reports') }}

)

select * from final
