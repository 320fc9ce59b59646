{#- Security events per threat type, level and mitigation per `width`; each counted once. -#}
{% macro threats_rollup(width) %}
select
    {{ time_bucket(width, 'event_time') }} as bucket,
    threat_type,
    threat_level,
    mitigation_status,
    count(*) as security_events,
    round(avg(severity_score::numeric), 3) as mean_severity_score,
    max(_loaded_at) as _loaded_at
from {{ ref('fct_security_events') }}
{{ aggregate_filter(ref('fct_security_events'), 'event_time', width) }}
group by 1, 2, 3, 4
{% endmacro %}
