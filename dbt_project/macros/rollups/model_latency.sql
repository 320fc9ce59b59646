{#- Latency percentiles, tokens and error rate per model, asset and environment per `width`. -#}
{% macro model_latency_rollup(width) %}
{%- set latency = {'latency_p50_ms': 0.5, 'latency_p95_ms': 0.95, 'latency_p99_ms': 0.99} -%}
{%- call with_percentiles('latency_ms', latency) -%}
select
    {{ time_bucket(width, 'event_time') }} as bucket,
    model_id,
    asset_id,
    environment,
    count(*) as requests,
    count(*) filter (where status = 'error') as errors,
    round(count(*) filter (where status = 'error')::numeric / count(*), 6) as error_rate,
    {{ percentiles('latency_ms', latency) }},
    -- numeric: a float sum depends on row order, and a re-run must change nothing
    sum(latency_ms::numeric) as latency_ms_sum,
    sum(input_tokens) as input_tokens,
    sum(output_tokens) as output_tokens,
    sum(response_bytes) as response_bytes,
    max(_loaded_at) as _loaded_at
from {{ ref('fct_requests') }}
{{ aggregate_filter(ref('fct_requests'), 'event_time', width) }}
group by 1, 2, 3, 4
{%- endcall -%}
{% endmacro %}
