{{ config(
    materialized='incremental',
    unique_key=['bucket', 'account_id', 'asset_id', 'model_id'],
    incremental_strategy='delete+insert',
) }}
-- Spend per account, asset and model per hour of usage, with cost per 1k tokens.
with

cost_records as (

    select * from {{ ref('fct_cost_records') }}
    {{ touched_buckets(ref('fct_cost_records'), 'usage_start') }}

),

final as (

    select
        {{ time_bucket('1 hour', 'usage_start') }} as bucket,
        account_id,
        asset_id,
        model_id,
        count(*) as cost_records,
        sum(cost_usd) as cost_usd,
        sum(input_tokens) as input_tokens,
        sum(output_tokens) as output_tokens,
        round(
            sum(cost_usd) * 1000 / nullif(sum(input_tokens + output_tokens), 0), 6
        ) as cost_usd_per_1k_tokens,
        max(_loaded_at) as _loaded_at
    from cost_records
    group by 1, 2, 3, 4

)

select * from final
