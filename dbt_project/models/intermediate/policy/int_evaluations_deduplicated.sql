-- Evaluations: one row per event_id, however often delivered.
with

evaluations as (

    select * from {{ ref('stg_policy__evaluations') }}

),

final as (

    {{ first_delivery('evaluations') }}

)

select * from final
