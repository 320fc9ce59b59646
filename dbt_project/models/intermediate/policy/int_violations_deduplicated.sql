-- Violations are exactly-once: each violation_id counted once however often delivered or
-- re-pulled, also when a module delivers it again under a new event id.
with

violations as (

    select * from {{ ref('stg_policy__violations') }}

),

final as (

    {{ first_delivery('violations', key='violation_id') }}

)

select * from final
