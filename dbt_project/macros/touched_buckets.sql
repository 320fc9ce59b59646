{#-
    Filter for incremental aggregates: the rows of every `width` bucket that newly built
    rows of `relation` fall in (late ones included). A touched bucket is recomputed whole,
    since percentiles and rates do not add up.
-#}
{% macro touched_buckets(relation, time_column, width='1 hour') %}
    {% if is_incremental() %}
        where {{ time_bucket(width, time_column) }} in (
            select distinct {{ time_bucket(width, time_column) }}
            from {{ relation }}
            {{ new_rows() }}
        )
    {% endif %}
{% endmacro %}
