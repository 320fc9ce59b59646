{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='hour',
) }}
-- The policy engine's hourly compliance report (POST /api/v1/compliance/report), one row
-- per hour that has evaluations or violations. The trend is the change of the compliance
-- rate from the hour before; null (absent from the report) when that hour had no
-- evaluations. An incremental build recomputes the hours its rollups changed, and the hour
-- after each, whose trend reads it.
{%- set since = newest(this) if is_incremental() else none %}
with

compliance as (

    select * from {{ ref('agg_compliance_hourly') }}

),

violations as (

    select * from {{ ref('agg_violations_hourly') }}

),

{% if since is not none -%}
touched as (

    select bucket from compliance where _loaded_at > {{ since }}
    union
    select bucket from violations where _loaded_at > {{ since }}

),

reported as (

    select bucket from touched
    union
    select bucket + interval '1 hour' from touched

),

{% endif -%}
evaluated as (

    select
        bucket,
        sum(evaluations)::bigint as evaluations,
        sum(compliant)::bigint as compliant,
        sum(non_compliant)::bigint as non_compliant,
        max(_loaded_at) as _loaded_at
    from compliance
    {%- if since is not none %}
    where bucket in (select bucket from reported union select bucket - interval '1 hour' from reported)
    {%- endif %}
    group by bucket

),

violations_by_kind as (

    select
        bucket,
        violation_type,
        violation_severity,
        sum(violations) as violations,
        max(_loaded_at) as _loaded_at
    from violations
    {%- if since is not none %}
    where bucket in (select bucket from reported)
    {%- endif %}
    group by 1, 2, 3

),

violated as (

    select
        bucket,
        sum(violations)::bigint as violations,
        max(_loaded_at) as _loaded_at
    from violations_by_kind
    group by bucket

),

{%- for kind in ['type', 'severity'] %}
by_{{ kind }} as (

    select
        bucket,
        jsonb_agg(
            jsonb_build_object('violation_{{ kind }}', violation_{{ kind }}, 'violations', violations)
            order by violation_{{ kind }} collate "C" nulls last
        ) as violations_by_{{ kind }}
    from (
        select bucket, violation_{{ kind }}, sum(violations) as violations
        from violations_by_kind
        group by 1, 2
    ) as counted
    group by bucket

),
{% endfor %}
hours as (

    select bucket from evaluated
    {%- if since is not none %}
    where bucket in (select bucket from reported)
    {%- endif %}
    union
    select bucket from violated

),

rated as (

    select
        hours.bucket,
        coalesce(evaluated.evaluations, 0) as evaluations,
        coalesce(evaluated.compliant, 0) as compliant,
        coalesce(evaluated.non_compliant, 0) as non_compliant,
        round(evaluated.compliant::numeric / nullif(evaluated.evaluations, 0), 6)
            as compliance_rate,
        greatest(evaluated._loaded_at, violated._loaded_at) as _loaded_at,
        coalesce(violated.violations, 0) as violations
    from hours
    left join evaluated on evaluated.bucket = hours.bucket
    left join violated on violated.bucket = hours.bucket

),

final as (

    select
        rated.bucket as hour,
        rated.evaluations,
        rated.compliant,
        rated.non_compliant,
        rated.violations,
        rated.compliance_rate,
        round(evaluated.compliant::numeric / nullif(evaluated.evaluations, 0), 6)
            as previous_compliance_rate,
        rated.compliance_rate
            - round(evaluated.compliant::numeric / nullif(evaluated.evaluations, 0), 6)
            as compliance_rate_trend,
        coalesce(by_type.violations_by_type, '[]'::jsonb) as violations_by_type,
        coalesce(by_severity.violations_by_severity, '[]'::jsonb) as violations_by_severity,
        greatest(rated._loaded_at, evaluated._loaded_at) as _loaded_at
    from rated
    left join evaluated on evaluated.bucket = rated.bucket - interval '1 hour'
    left join by_type on by_type.bucket = rated.bucket
    left join by_severity on by_severity.bucket = rated.bucket

)

select * from final
