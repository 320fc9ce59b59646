-- The policy engine is exactly-once: each audit entry once however often delivered or
-- re-pulled.
with

audit_entries as (

    select * from {{ ref('stg_policy__audit_entries') }}

),

final as (

    {{ first_delivery('audit_entries') }}

)

select * from final
