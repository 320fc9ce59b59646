{#- Marketplace usage per extension per `width` of usage period: invocations, reports and
    active tenants (summed over the hourly reports, and the peak of one report). -#}
{% macro marketplace_usage_rollup(width) %}
select
    {{ time_bucket(width, 'period_start') }} as bucket,
    extension_id,
    count(*) as usage_reports,
    sum(invocations) as invocations,
    sum(active_tenants) as active_tenant_hours,
    max(active_tenants) as peak_active_tenants,
    max(_loaded_at) as _loaded_at
from {{ ref('fct_marketplace_usage') }}
{{ aggregate_filter(ref('fct_marketplace_usage'), 'period_start', width) }}
group by 1, 2
{% endmacro %}
