{#-
    materialized='aggregate': a time-bucketed rollup of a fact table, one SELECT ... GROUP BY
    whose first column is `bucket` (time_bucket of the fact's time). The same model is
    - on TimescaleDB, a continuous aggregate with a refresh policy and the aggregates'
      retention policy, refreshed at the end of every build from the first day that rows
      landed since the last build fall in. Not over all time: a refresh over chunks that
      retention dropped would empty their buckets, which the aggregates outlive. Facts
      change only in dbt builds, so the aggregate is materialized only (not real-time);
    - on PostgreSQL, a table maintained incrementally: the buckets touched by rows that
      reached the fact since the last build (late ones included) are recomputed whole,
      since percentiles and rates do not add up. The model filters its fact with
      `aggregate_filter(...)`, which is empty on TimescaleDB and on a full build.
    dbt's own materializations cannot do either: a continuous aggregate needs
    `WITH (timescaledb.continuous)` and a refresh outside any transaction, and the
    incremental one cannot replace whole buckets found at run time.

    An enforced contract (`contract: {enforced: true}`, a `data_type` per column) holds on
    both: the model's SQL must give the contract's columns and types, or the build fails
    before it changes anything (dbt's `get_assert_columns_equivalent`). On PostgreSQL, dbt's
    `get_create_table_as_sql` checks it and creates the table from the contract's columns;
    a continuous aggregate's DDL takes no column list, so it is checked here, and the view
    has the SQL's columns, which the check has just found equal to the contract's.
-#}
{% materialization aggregate, adapter='postgres' %}
    {%- if warehouse_kind() == 'timescaledb' -%}
        {{ return(continuous_aggregate()) }}
    {%- else -%}
        {{ return(incremental_aggregate()) }}
    {%- endif -%}
{% endmaterialization %}

{#-
    Is this build of an aggregate model incremental (PostgreSQL, no full refresh, the table
    there with the contract's columns)? A table whose columns are not the contract's (a
    column added to the model and its contract, a type changed) is rebuilt, as TimescaleDB
    recreates a continuous aggregate whose SQL changed: inserting the touched buckets into
    it would drop or cast the new columns.
-#}
{% macro aggregate_is_incremental() %}
    {%- if not execute or should_full_refresh() or warehouse_kind() != 'postgres' -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set existing = adapter.get_relation(this.database, this.schema, this.identifier) -%}
    {{ return(existing is not none and existing.type == 'table'
              and holds_contract_columns(existing)) }}
{% endmacro %}

{#- Whether `relation` has the columns of the model's enforced contract, with their types as
    the warehouse spells them (information_schema's, a numeric's precision included). -#}
{% macro holds_contract_columns(relation) %}
    {%- if not config.get('contract').enforced -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set held = [] -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do held.append(column.name ~ ':' ~ column.data_type) -%}
    {%- endfor -%}
    {%- set declared = [] -%}
    {%- for column in model.columns.values() -%}
        {%- do declared.append(column.name ~ ':' ~ column.data_type) -%}
    {%- endfor -%}
    {{ return(held | map('lower') | map('replace', ' ', '') | sort | list
              == declared | map('lower') | map('replace', ' ', '') | sort | list) }}
{% endmacro %}

{#-
    The WHERE clause of an aggregate model on its fact: on an incremental build, the rows of
    every `width` bucket that rows landed since the last build fall in. Touched buckets that
    follow each other (the usual case: the latest hours) are one time range, which the
    planner estimates well; only gaps between them need the list of buckets.

    "Since the last build" is exact, with no lookback (`aggregate_watermark`).
-#}
{#-
    The newest `_loaded_at` an aggregate holds (max over its fact rows): the fact rows stamped
    later are the ones it has not seen. No lookback is needed: only dbt builds write facts,
    one build at a time (the transform DAG runs once at a time), each aggregate after its
    fact; a fact's new rows are stamped later than any it held (`new_rows`); and the rows
    that a late asset state updates (`refresh_asset_columns`) keep their stamps and change
    only asset columns, which no aggregate reads. (A deduplicated fact row changes only when
    a delivery stamped later wins.)
-#}
{% macro aggregate_watermark(aggregate) %}
    {{ return(newest(aggregate)) }}
{% endmacro %}

{% macro aggregate_filter(facts, time_column, width) %}
    {%- if not aggregate_is_incremental() -%}{{ return('') }}{%- endif -%}
    {%- set bucket = time_bucket(width, time_column) | trim -%}
    {%- set touched = run_query(
        "with buckets as (select distinct " ~ bucket ~ " as bucket from " ~ facts
        ~ " where _loaded_at > " ~ aggregate_watermark(this) ~ ")"
        ~ " select min(bucket)::text, max(bucket)::text, count(*) = (select count(*)"
        ~ " from generate_series(min(bucket), max(bucket), interval '" ~ width ~ "')),"
        ~ " string_agg(quote_literal(bucket::text), ', ' order by bucket) from buckets"
    ).rows[0] -%}
    {%- if touched[0] is none %}
    where false
    {%- else %}
    where {{ time_column }} >= '{{ touched[0] }}'
        and {{ time_column }} < timestamptz '{{ touched[1] }}' + interval '{{ width }}'
        {%- if not touched[2] %}
        and {{ bucket }} in ({{ touched[3] }})
        {%- endif %}
    {%- endif %}
{% endmacro %}

{% macro incremental_aggregate() %}
    {%- set existing = load_cached_relation(this) -%}
    {%- set target = this.incorporate(type='table') -%}
    {#- as the model's SQL was compiled: all of it, or the touched buckets (aggregate_filter) -#}
    {%- set rebuild = not aggregate_is_incremental() -%}
    {%- set intermediate = make_intermediate_relation(target) -%}
    {%- set backup = make_backup_relation(target, 'table') -%}
    {{ drop_relation_if_exists(load_cached_relation(intermediate)) }}
    {{ drop_relation_if_exists(load_cached_relation(backup)) }}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {%- if rebuild %}
        {% call statement('main') -%}
            {{ get_create_table_as_sql(False, intermediate, sql) }};
            create index on {{ intermediate }} (bucket);
            create index on {{ intermediate }} (_loaded_at);
            {%- if existing is not none and existing.type == 'table' and not should_full_refresh() %}
            {{ keep_buckets_past_the_facts(existing, intermediate) }}
            {%- endif %}
        {%- endcall %}
        {%- if existing is not none and existing.type == 'table' %}
            {{ adapter.rename_relation(existing, backup) }}
        {%- elif existing is not none %}
            {{ drop_relation_or_aggregate(existing) }}
        {%- endif %}
        {{ adapter.rename_relation(intermediate, target) }}
        {% do create_indexes(target) %}
    {%- else %}
        {%- set temp = make_temp_relation(target) -%}
        {%- set columns = adapter.get_columns_in_relation(target)
            | map(attribute='quoted') | join(', ') -%}
        {#- A rollup reads every row of its touched buckets. The planner may take the fact's
            time index for that, row by row in index order, when its heap is in time order,
            which is slower than reading the partition. Bitmap and sequential scans stay, for
            small ranges too. -#}
        {{ create_index_if_missing(target, '_loaded_at') }}
        {% call statement('main') -%}
            set local enable_indexscan = off;
            {{ get_create_table_as_sql(True, temp, sql) }};
            delete from {{ target }} where bucket in (select bucket from {{ temp }});
            insert into {{ target }} ({{ columns }}) select {{ columns }} from {{ temp }};
        {%- endcall %}
    {%- endif %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do persist_docs(target, model) %}
    {{ adapter.commit() }}
    {{ drop_relation_if_exists(backup) }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target]}) }}
{% endmacro %}

{#- An index on `column` of `relation`, unless one leads with it: a rollup's tests and its
    watermark select by `_loaded_at`, and a table built before it had the index gets it. -#}
{% macro create_index_if_missing(relation, column) %}
    {%- set held = run_query(
        "select count(*) from pg_index as i join pg_attribute as a"
        ~ " on a.attrelid = i.indrelid and a.attnum = i.indkey[0]"
        ~ " where i.indrelid = '" ~ relation ~ "'::regclass and a.attname = '" ~ column ~ "'"
    ).columns[0].values()[0] -%}
    {%- if held == 0 -%}
        {% call statement('index_' ~ column) -%}
            create index on {{ relation }} ({{ column }})
        {%- endcall %}
    {%- endif -%}
{% endmacro %}

{#-
    A rollup rebuilt because its contract changed keeps the buckets older than any its
    facts still hold: rollups outlive their facts' retention, so those buckets cannot be
    computed again. They keep the columns both tables have; a new column is null there.
    (`--full-refresh` recomputes from the facts alone, as asked.)
-#}
{% macro keep_buckets_past_the_facts(existing, rebuilt) %}
    {%- set kept = [] -%}
    {%- set names = adapter.get_columns_in_relation(existing) | map(attribute='name') | list -%}
    {%- for column in model.columns.values() if column.name in names -%}
        {%- do kept.append(adapter.quote(column.name)) -%}
    {%- endfor %}
    insert into {{ rebuilt }} ({{ kept | join(', ') }})
    select {{ kept | join(', ') }} from {{ existing }}
    where bucket < (select coalesce(min(bucket), 'infinity') from {{ rebuilt }});
{%- endmacro %}

{% macro continuous_aggregate() %}
    {%- if config.get('contract').enforced -%}
        {{ get_assert_columns_equivalent(sql) }}
    {%- endif -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set target = this.incorporate(type='view') -%}
    {%- set signature = 'hub continuous aggregate ' ~ local_md5(sql) -%}
    {%- set current = none -%}
    {%- if existing is not none and existing.type == 'view' -%}
        {%- set current = run_query(
            "select obj_description('" ~ this ~ "'::regclass, 'pg_class')"
        ).columns[0].values()[0] -%}
    {%- endif -%}
    {%- set recreate = current != signature or should_full_refresh() -%}
    {%- set refresh = var('continuous_aggregate_refresh') -%}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {%- if recreate and existing is not none %}
        {{ drop_relation_or_aggregate(existing) }}
    {%- endif %}
    {% call statement('main') -%}
        {%- if recreate %}
            create materialized view {{ target }}
                with (timescaledb.continuous, timescaledb.materialized_only = true)
            as {{ sql }}
            with no data;
            comment on view {{ target }} is '{{ signature }}';
            create index on {{ target }} (_loaded_at);
            select add_continuous_aggregate_policy(
                '{{ target }}',
                start_offset => interval '{{ refresh.start_offset }}',
                end_offset => interval '{{ refresh.end_offset }}',
                schedule_interval => interval '{{ refresh.schedule_interval }}'
            );
            select add_retention_policy(
                '{{ target }}', drop_after => interval '{{ var("retention")["aggregates"] }}'
            );
        {%- else %}
            select 'up to date' as continuous_aggregate
        {%- endif %}
    {%- endcall %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {%- set refresh_from = 'null' if recreate else continuous_aggregate_refresh_start(target) -%}
    {%- if refresh_from is not none -%}
        {#- outside any transaction, as TimescaleDB requires (the profile sets autocommit) -#}
        {% call statement('refresh', auto_begin=False) -%}
            call refresh_continuous_aggregate('{{ target }}', {{ refresh_from }}, null)
        {%- endcall %}
    {%- endif -%}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target]}) }}
{% endmacro %}

{#- Drop a table, a view or a continuous aggregate (a view that only DROP MATERIALIZED VIEW takes). -#}
{% macro drop_relation_or_aggregate(relation) %}
    {%- if relation.type == 'view' and warehouse_kind() == 'timescaledb' -%}
        {%- set is_aggregate = run_query(
            "select count(*) from timescaledb_information.continuous_aggregates"
            ~ " where view_schema = '" ~ relation.schema ~ "'"
            ~ " and view_name = '" ~ relation.identifier ~ "'"
        ).columns[0].values()[0] > 0 -%}
        {%- if is_aggregate -%}
            {% call statement('drop_aggregate') -%}
                drop materialized view if exists {{ relation }} cascade
            {%- endcall %}
            {{ adapter.cache_dropped(relation) }}
            {{ return('') }}
        {%- endif -%}
    {%- endif -%}
    {{ adapter.drop_relation(relation) }}
{% endmacro %}

{#-
    Where to start refreshing a continuous aggregate after an incremental build: the start of
    the first UTC day holding rows of its fact landed since its newest materialized row
    (`aggregate_watermark`), as a SQL literal; none if nothing new.
-#}
{% macro continuous_aggregate_refresh_start(aggregate) %}
    {%- set facts = [] -%}
    {%- for node_id in model.depends_on.nodes -%}
        {%- set node = graph.nodes.get(node_id) -%}
        {%- if node is not none and (node.config.meta or {}).get('fact') -%}
            {%- do facts.append(node) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if facts | length != 1 -%}
        {{ exceptions.raise_compiler_error(
            "aggregate " ~ this ~ " must read exactly one fact model (meta.fact), not "
            ~ facts | length
        ) }}
    {%- endif -%}
    {%- set fact = facts[0] -%}
    {%- set time = fact.config.meta.fact.time_column -%}
    {%- set start = run_query(
        "select date_trunc('day', min(" ~ time ~ "), 'UTC')::text from "
        ~ adapter.get_relation(fact.database, fact.schema, fact.alias)
        ~ " where _loaded_at > " ~ aggregate_watermark(aggregate)
    ).columns[0].values()[0] -%}
    {{ return(none if start is none else "timestamptz '" ~ start ~ "'") }}
{% endmacro %}
