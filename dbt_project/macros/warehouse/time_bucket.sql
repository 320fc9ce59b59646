{#- The start of the `width` bucket holding `column`, on every warehouse the hub runs on. -#}
{% macro time_bucket(width, column) %}
    {{ return(warehouse_dispatch('time_bucket')(width, column)) }}
{% endmacro %}

{#- TimescaleDB: its own time_bucket, which continuous aggregates require. -#}
{% macro timescaledb__time_bucket(width, column) %}
    time_bucket(interval '{{ width }}', {{ column }})
{% endmacro %}

{#-
    Plain PostgreSQL (14+): date_bin, on TimescaleDB's default origin (Monday 2000-01-03), so
    that buckets of any width, weeks included, start where TimescaleDB's do.
-#}
{% macro postgres__time_bucket(width, column) %}
    date_bin(interval '{{ width }}', {{ column }}, timestamptz '2000-01-03 00:00:00+00')
{% endmacro %}
