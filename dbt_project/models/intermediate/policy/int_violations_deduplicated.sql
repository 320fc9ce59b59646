-- Violations are exactly-once: each counted once however often delivered or re-pulled.
with

violations as (

    select * from {{ ref('stg_policy__violations') }}

),

final as (

    {{ first_delivery('violations') }}

)

select * from final
