{{ config(
    materialized='incremental',
    unique_key=['bucket', 'policy_id'],
    incremental_strategy='delete+insert',
) }}
-- Compliance rate per policy per hour: compliant evaluations over all evaluations.
with

evaluations as (

    select * from {{ ref('fct_evaluations') }}
    {{ touched_buckets(ref('fct_evaluations'), 'event_time') }}

),

final as (

    select
        {{ time_bucket('1 hour', 'event_time') }} as bucket,
        policy_id,
        count(*) as evaluations,
        count(*) filter (where result = 'compliant') as compliant,
        count(*) filter (where result = 'non_compliant') as non_compliant,
        round(count(*) filter (where result = 'compliant')::numeric / count(*), 6)
            as compliance_rate,
        max(_loaded_at) as _loaded_at
    from evaluations
    group by 1, 2

)

select * from final
