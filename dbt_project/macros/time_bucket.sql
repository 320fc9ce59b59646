{#- The start of the `width` bucket holding `column`, on every warehouse the hub runs on. -#}
{% macro time_bucket(width, column) %}
    {{ return(adapter.dispatch('time_bucket', 'llm_analytics_hub')(width, column)) }}
{% endmacro %}

{#- Plain PostgreSQL (14+): date_bin, aligned on the epoch like TimescaleDB's time_bucket. -#}
{% macro default__time_bucket(width, column) %}
    date_bin(interval '{{ width }}', {{ column }}, timestamptz '1970-01-01 00:00:00+00')
{% endmacro %}
