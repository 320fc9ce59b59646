{#-
    Filter for incremental models: rows landed since the last build of this model.
    Landing rows carry `_loaded_at` (set by the load step); a re-loaded window gets a new
    `_loaded_at`, so backfills and re-pulls of old windows flow in too. The lookback covers
    loads that were still committing during the last build (a watermark alone would miss
    them); re-reading those rows is harmless, since incremental models replace by key.
-#}
{% macro new_rows(loaded_at='_loaded_at') %}
    {% if is_incremental() %}
        where {{ loaded_at }} > {{ new_rows_since(this) }}
    {% endif %}
{% endmacro %}

{#-
    The `_loaded_at` after which rows are new to `relation` (built before): its newest row's
    `_loaded_at` minus var('incremental_lookback'). Read first and written as a literal, not
    as a subquery: the planner then estimates the filter from its statistics and takes the
    `_loaded_at` indexes, where a subquery's unknown value makes it scan all of history.
-#}
{% macro new_rows_since(relation) %}
    {%- set lookback = "interval '" ~ var('incremental_lookback') ~ "'" -%}
    {%- if not execute -%}
        {{ return("(select coalesce(max(_loaded_at), '-infinity') from " ~ relation ~ ") - "
                  ~ lookback) }}
    {%- endif -%}
    {{ return(newest(relation) ~ " - " ~ lookback) }}
{% endmacro %}

{#- The greatest `column` of `relation` as a timestamptz literal ('-infinity' if it is empty),
    read when the model or test runs: new_rows_since, and the tests' tested_rows and
    tested_buckets. -#}
{% macro newest(relation, column='_loaded_at') %}
    {%- set value = run_query(
        "select coalesce(max(" ~ column ~ "), '-infinity')::text from " ~ relation
    ).columns[0].values()[0] -%}
    {{ return("timestamptz '" ~ value ~ "'") }}
{% endmacro %}

{#-
    Filter for incremental models that deduplicate: every row of the keys that have new
    rows in `landed` (first deliveries and versions landed earlier included), so the
    deduplication is decided over all deliveries of a key, not just the new ones.

    Written as `= any(array(...))`, not `in (select ...)`: PostgreSQL turns an IN subquery
    into a join above the deduplication's window function, which then ranks every row ever
    landed; the array is computed once before the query runs (an InitPlan), so the filter
    is a plain condition on the window's partition key, which PostgreSQL pushes below the
    window: only the touched keys' deliveries are read (by the landing table's key index)
    and ranked.
-#}
{% macro keys_with_new_rows(key, landed) %}
    {% if is_incremental() %}
        where {{ key }} = any(array(select {{ key }} from {{ landed }} {{ new_rows() }}))
    {% endif %}
{% endmacro %}
