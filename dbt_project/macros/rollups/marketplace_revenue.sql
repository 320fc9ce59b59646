{#- Marketplace revenue in USD per extension per `width` of revenue period. -#}
{% macro marketplace_revenue_rollup(width) %}
select
    {{ time_bucket(width, 'period_start') }} as bucket,
    extension_id,
    count(*) as revenue_records,
    sum(amount_usd) as revenue_usd,
    max(_loaded_at) as _loaded_at
from {{ ref('fct_marketplace_revenue') }}
{{ aggregate_filter(ref('fct_marketplace_revenue'), 'period_start', width) }}
group by 1, 2
{% endmacro %}
