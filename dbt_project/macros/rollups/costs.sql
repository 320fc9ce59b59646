{#- Spend per account, asset and model per `width` of usage, with cost per 1k tokens. -#}
{% macro costs_rollup(width) %}
select
    {{ time_bucket(width, 'usage_start') }} as bucket,
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
from {{ ref('fct_cost_records') }}
{{ aggregate_filter(ref('fct_cost_records'), 'usage_start', width) }}
group by 1, 2, 3, 4
{% endmacro %}
