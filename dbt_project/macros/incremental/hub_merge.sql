{#-
    incremental_strategy='hub_merge', for the fact tables: dbt's delete+insert by unique key,
    bounded to the time range of the new rows so that it touches only their chunks or
    partitions, not the whole history. On PostgreSQL it first creates the day partitions
    the new rows need. A fact whose rows can move in time under the same key (a corrected
    record) sets meta.fact.time_is_stable: false and deletes by key alone.
-#}
{% macro get_incremental_hub_merge_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set fact = fact_settings() -%}
    {%- set time = fact.time_column -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set key = [key] if key is string else key -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | join(', ') -%}
    {%- set bounds = run_query(
        "select min(" ~ time ~ ")::text, max(" ~ time ~ ")::text from " ~ source
    ).rows[0] -%}
    {%- if bounds[0] is none -%}
        {{ return('select 0 as nothing_new') }}
    {%- endif -%}
    {{ warehouse_dispatch('prepare_fact_rows')(target, source, fact) }}
    delete from {{ target }}
    where ({{ key | join(', ') }}) in (select {{ key | join(', ') }} from {{ source }})
    {%- if fact.time_is_stable %}
        and {{ time }} between '{{ bounds[0] }}' and '{{ bounds[1] }}'
    {%- endif %};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }};
{% endmacro %}

{% macro timescaledb__prepare_fact_rows(target, source, fact) %}{% endmacro %}

{% macro postgres__prepare_fact_rows(target, source, fact) %}
    {#- a table from before partitioning: the post-hook fact_storage() converts it -#}
    {%- if is_partitioned(target) -%}
        {{ day_partitions(target, source, fact.time_column) }}
    {%- endif -%}
{% endmacro %}
