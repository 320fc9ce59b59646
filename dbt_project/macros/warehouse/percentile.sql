{#-
    Continuous percentiles of one column in each group (percentile_cont: linear
    interpolation between the closest ranks; nulls ignored), on every warehouse the hub runs
    on, as named columns. A rollup wraps its grouped SELECT in `with_percentiles` and puts
    `percentiles` in its select list:

        {%- set latency = {'latency_p50_ms': 0.5, 'latency_p95_ms': 0.95} -%}
        {%- call with_percentiles('latency_ms', latency) -%}
        select ..., {{ percentiles('latency_ms', latency) }}, ... group by ...
        {%- endcall -%}

    Both forms give the same numbers, in the same columns.
-#}
{% macro percentiles(column, named) %}
    {{ return(warehouse_dispatch('percentiles')(column, named)) }}
{% endmacro %}

{% macro with_percentiles(column, named) %}
    {{ return(warehouse_dispatch('with_percentiles')(caller(), column, named)) }}
{% endmacro %}

{#- TimescaleDB: the ordered-set aggregate itself, which continuous aggregates take (one
    level of SELECT, no subquery); PostgreSQL sorts a group's values once for all of them. -#}
{% macro timescaledb__percentiles(column, named) -%}
    {%- for name, fraction in named.items() %}
    percentile_cont({{ fraction }}) within group (order by {{ column }}) as {{ name }}
    {{- ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{% macro timescaledb__with_percentiles(sql, column, named) %}
    {{ return(sql) }}
{% endmacro %}

{#-
    PostgreSQL: percentile_cont over the group's values, collected by array_agg, for all
    fractions at once (`percentile_cont(array[...])`: one sort of each group's values),
    into one array column that `with_percentiles` unpacks around the grouped SELECT.
    An ordered-set aggregate over the rows makes PostgreSQL (before 16) sort all of them by
    the group key and group them in order; array_agg lets it group them in a hash table.
    One array for all fractions sorts each group once; an array subquery per fraction
    would sort it once per fraction.
-#}
{% macro postgres__percentiles(column, named) -%}
    (select percentile_cont(array[{{ named.values() | join(', ') }}]::float8[])
                within group (order by value)
     from unnest(array_agg({{ column }})) as value) as {{ column }}__percentiles
{%- endmacro %}

{% macro postgres__with_percentiles(sql, column, named) %}
    {%- if not execute -%}{{ return(sql) }}{%- endif -%}
    {%- set packed = column ~ '__percentiles' -%}
    {%- set selected = [] -%}
    {%- for found in get_columns_in_query(sql) -%}
        {%- if found == packed -%}
            {%- for name in named -%}
                {%- do selected.append('grouped.' ~ packed ~ '[' ~ loop.index ~ '] as ' ~ name) -%}
            {%- endfor -%}
        {%- else -%}
            {%- do selected.append('grouped.' ~ adapter.quote(found)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return('select\n    ' ~ selected | join(',\n    ') ~ '\nfrom (\n' ~ sql ~ '\n) as grouped') }}
{% endmacro %}
