{#-
    Filter for incremental models: rows landed since the last build of this model.
    Landing rows carry `_loaded_at` (set by the load step); a re-loaded window gets a new
    `_loaded_at`, so backfills and re-pulls of old windows flow in too. The watermark (the
    newest `_loaded_at` the model holds) misses no load that was still committing during the
    last build: builds and loads exclude each other on the landing tables
    (`lock_loaded_tables`), and a load stamps its rows after it holds its lock, so a load a
    build did not see stamps them later than any row the build saw. No lookback: the rows
    already merged are not read again (asset states that come after their facts reach
    them through `refresh_asset_columns`).
    The watermark is read first and written as a literal, not as a subquery: the planner
    then estimates the filter from its statistics and takes the `_loaded_at` indexes, where
    a subquery's unknown value makes it scan all of history.
-#}
{% macro new_rows(loaded_at='_loaded_at') %}
    {% if fact_is_incremental() %}
        where {{ loaded_at }} > {{ newest(this) if execute
                                   else '(select max(_loaded_at) from ' ~ this ~ ')' }}
    {% endif %}
{% endmacro %}

{#- The greatest `column` of `relation` as a timestamptz literal ('-infinity' if it is empty),
    read when the model runs: new_rows, refresh_asset_columns. -#}
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
    {% if fact_is_incremental() %}
        where {{ key }} = any(array(select {{ key }} from {{ landed }} {{ new_rows() }}))
    {% endif %}
{% endmacro %}

{#-
    A fact's landing locks: SHARE on the landing tables it reads (its sources,
    through staging views and ephemeral intermediates), taken just before it reads them.
    That waits for the loads in flight on them to commit, and holds back new loads until the
    read commits, so that the `_loaded_at` watermark (`new_rows`) needs no lookback: see the
    load step (analytics_hub.warehouse.LOADED_AT). Tables are locked by name in one
    statement, as an atomic load of several tables locks them, so the two cannot deadlock.
    Aggregates read facts, which only builds write, one at a time (the transform DAG runs
    once at a time), and take no lock. '' for anything else.
-#}
{% macro lock_loaded_tables() %}
    {%- if not execute or model is not defined or model.config.materialized != 'fact' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set found = namespace(level=model.depends_on.nodes | list, tables=[]) -%}
    {%- for _ in range(10) if found.level -%}
        {%- set parents = [] -%}
        {%- for node_id in found.level -%}
            {%- if node_id in graph.sources -%}
                {%- set source = graph.sources[node_id] -%}
                {%- do found.tables.append(api.Relation.create(
                    database=source.database, schema=source.schema,
                    identifier=source.identifier) | string) -%}
            {%- elif node_id in graph.nodes
                     and graph.nodes[node_id].config.materialized in ('view', 'ephemeral') -%}
                {%- do parents.extend(graph.nodes[node_id].depends_on.nodes) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set found.level = parents -%}
    {%- endfor -%}
    {%- if found.tables | length == 0 -%}{{ return('') }}{%- endif -%}
    {{ return('lock table ' ~ (found.tables | unique | sort | join(', ')) ~ ' in share mode;') }}
{% endmacro %}
