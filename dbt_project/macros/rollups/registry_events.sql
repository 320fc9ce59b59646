{#- Registry lifecycle events per type per `width`, each event counted once. -#}
{% macro registry_events_rollup(width) %}
select
    {{ time_bucket(width, 'event_time') }} as bucket,
    event_type,
    count(*) as events,
    max(_loaded_at) as _loaded_at
from {{ ref('fct_registry_events') }}
{{ aggregate_filter(ref('fct_registry_events'), 'event_time', width) }}
group by 1, 2
{% endmacro %}
