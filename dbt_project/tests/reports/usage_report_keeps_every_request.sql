{#- The usage report attributes every request and token of the telemetry rollup to an
    account or to none: per hour and asset, its totals equal the rollup's. Checked in the
    hours the newest loads changed. The rollup is found in the graph, not by `ref()`, so
    that the test runs with the report's build only, not with the rollup's (before the
    report has taken the rollup's new rows). -#}
{%- set rollup = 'model.' ~ project_name ~ '.agg_model_latency_hourly' -%}
with

recent as (

    select distinct hour from {{ ref('rpt_costops_usage_hourly') }}
    where {{ var('tested_rows') }}

),

reported as (

    select hour, asset_id, sum(requests) as requests, sum(input_tokens) as input_tokens,
        sum(output_tokens) as output_tokens
    from {{ ref('rpt_costops_usage_hourly') }}
    where hour in (select hour from recent)
    group by 1, 2

),

used as (

    select bucket as hour, asset_id, sum(requests) as requests,
        sum(input_tokens) as input_tokens, sum(output_tokens) as output_tokens
    from {{ relation_of(graph.nodes[rollup]) if execute else 'unused' }}
    where bucket in (select hour from recent)
    group by 1, 2

)

select
    coalesce(reported.hour, used.hour) as hour,
    coalesce(reported.asset_id, used.asset_id) as asset_id,
    reported.requests as reported_requests,
    used.requests as used_requests
from reported
full join used
    on used.hour = reported.hour and used.asset_id is not distinct from reported.asset_id
where reported.requests is distinct from used.requests
    or reported.input_tokens is distinct from used.input_tokens
    or reported.output_tokens is distinct from used.output_tokens
