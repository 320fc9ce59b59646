{#- Compliance rate per policy per `width`: compliant evaluations over all evaluations. -#}
{% macro compliance_rollup(width) %}
select
    {{ time_bucket(width, 'event_time') }} as bucket,
    policy_id,
    count(*) as evaluations,
    count(*) filter (where result = 'compliant') as compliant,
    count(*) filter (where result = 'non_compliant') as non_compliant,
    round(count(*) filter (where result = 'compliant')::numeric / count(*), 6)
        as compliance_rate,
    max(_loaded_at) as _loaded_at
from {{ ref('fct_evaluations') }}
{{ aggregate_filter(ref('fct_evaluations'), 'event_time', width) }}
group by 1, 2
{% endmacro %}

{#- Violations per policy, type and severity per `width`; each violation counted once. -#}
{% macro violations_rollup(width) %}
select
    {{ time_bucket(width, 'event_time') }} as bucket,
    policy_id,
    violation_type,
    violation_severity,
    count(*) as violations,
    max(_loaded_at) as _loaded_at
from {{ ref('fct_violations') }}
{{ aggregate_filter(ref('fct_violations'), 'event_time', width) }}
group by 1, 2, 3, 4
{% endmacro %}
