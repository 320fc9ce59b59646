{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='hour',
) }}
-- Usage per account, asset and hour for costops' cost allocation (POST
-- /api/v1/usage/report): requests and tokens from the telemetry. Telemetry names no
-- account, so an asset's usage in an hour is split among the accounts that costops' own
-- records (their latest versions) tie to that asset for a usage period overlapping the
-- hour, in proportion to the tokens those records carry (equally where they carry none).
-- The split is in whole units and keeps the totals: each account, in account_id order
-- (bytewise), gets floor(total x running weight / total weight) less the same for the
-- accounts before it.
-- Usage of an asset that no cost record ties to an account in that hour, or of no asset,
-- is reported with a null account_id: unattributed, never dropped.
{%- set since = newest(this) if is_incremental() else none %}
{#- a cost record's hours: from its usage_start's to its usage_end's (an exclusive end), or
    only usage_start's when it has no usage_end or one not after usage_start -#}
{%- set first_hour = time_bucket('1 hour', 'usage_start') | trim %}
{%- set last_hour = time_bucket(
    '1 hour', "greatest(usage_end - interval '1 microsecond', usage_start)") | trim %}
with

requests as (

    select * from {{ ref('agg_model_latency_hourly') }}

),

cost_records as (

    select * from {{ ref('fct_cost_records') }}

),

{% if since is not none -%}
touched as (

    select bucket from requests where _loaded_at > {{ since }}
    union
    select generate_series({{ first_hour }}, {{ last_hour }}, interval '1 hour')
    from cost_records
    where _loaded_at > {{ since }}

),

{% endif -%}
usage as (

    select
        bucket,
        asset_id,
        sum(requests) as requests,
        sum(input_tokens) as input_tokens,
        sum(output_tokens) as output_tokens,
        max(_loaded_at) as _loaded_at
    from requests
    {%- if since is not none %}
    where bucket in (select bucket from touched)
    {%- endif %}
    group by 1, 2

),

tied_hours as (

    select
        generate_series({{ first_hour }}, {{ last_hour }}, interval '1 hour') as bucket,
        asset_id,
        account_id,
        coalesce(input_tokens, 0) + coalesce(output_tokens, 0) as tokens,
        _loaded_at
    from cost_records
    where asset_id is not null and account_id is not null
    {%- if since is not none %}
        and {{ first_hour }} <= (select max(bucket) from touched)
        and {{ last_hour }} >= (select min(bucket) from touched)
    {%- endif %}

),

ties as (

    select
        bucket,
        asset_id,
        account_id,
        sum(tokens) as tokens,
        max(_loaded_at) as _loaded_at
    from tied_hours
    group by 1, 2, 3

),

weights as (

    select
        bucket,
        asset_id,
        account_id,
        _loaded_at,
        -- no tokens on any of the asset's records in the hour: equal shares
        case when sum(tokens) over (partition by bucket, asset_id) > 0 then tokens else 1 end
            as weight
    from ties

),

weighted as (

    select
        *,
        sum(weight) over (partition by bucket, asset_id order by account_id collate "C")
            as running_weight,
        sum(weight) over (partition by bucket, asset_id) as total_weight
    from weights

),

attributed as (

    select
        usage.bucket,
        weighted.account_id,
        usage.asset_id,
        {%- for measure in ['requests', 'input_tokens', 'output_tokens'] %}
        floor(usage.{{ measure }}::numeric * weighted.running_weight / weighted.total_weight)
            - floor(
                usage.{{ measure }}::numeric * (weighted.running_weight - weighted.weight)
                / weighted.total_weight
            ) as {{ measure }},
        {%- endfor %}
        greatest(usage._loaded_at, weighted._loaded_at) as _loaded_at
    from usage
    inner join weighted
        on weighted.bucket = usage.bucket and weighted.asset_id = usage.asset_id

),

unattributed as (

    select
        usage.bucket,
        null::text as account_id,
        usage.asset_id,
        usage.requests,
        usage.input_tokens,
        usage.output_tokens,
        usage._loaded_at
    from usage
    where not exists (
        select from ties where ties.bucket = usage.bucket and ties.asset_id = usage.asset_id
    )

),

final as (

    select
        bucket as hour,
        account_id,
        asset_id,
        requests::bigint as requests,
        input_tokens::bigint as input_tokens,
        output_tokens::bigint as output_tokens,
        _loaded_at
    from attributed
    union all
    select
        bucket as hour,
        account_id,
        asset_id,
        requests::bigint,
        input_tokens::bigint,
        output_tokens::bigint,
        _loaded_at
    from unattributed

)

select * from final
