{#-
    materialized='fact': an event fact, merged by its unique_key from the rows landed since
    its last build. A fact model declares what it is in its config:

        config(materialized='fact', unique_key='event_id',
               meta={'fact': {'module': 'observatory', 'time_column': 'event_time',
                              'index_by': [['asset_id']]}})

    and its SQL reads its new rows with `new_rows()` (or `keys_with_new_rows(...)`). A build:
    1. reads the rows the model selects into a table (`get_create_table_as_sql`, dbt's, so an
       enforced contract is checked and its constraints, NOT NULL and named CHECKs, are the
       table's: a row that breaks one fails the build before the fact changes), holding the
       landing tables' locks while it reads (`lock_loaded_tables`): on the first build or a
       full refresh, the fact itself; else its new rows;
    2. updates the rows it holds to asset states loaded since (`refresh_asset_columns`);
    3. merges the new rows with dbt's delete+insert (`get_delete_insert_merge_sql`), the
       delete bounded to the new rows' times where a key's row cannot move in time
       (`replaced_rows_predicates`); or, on PostgreSQL, when a partition is new or the new
       rows would grow it by more than var('fact_rebuild_share'), rebuilds that partition
       with its indexes built in bulk (`merge_rebuilding_partitions`);
    4. puts the table in its storage (`fact_storage`): a hypertable with its policies on
       TimescaleDB, a table partitioned by time on PostgreSQL, with the fact's indexes.
    A column added to the model (and its contract) is added to the table, as the marts'
    `on_schema_change: append_new_columns` (dbt_project.yml) asks.
    dbt's incremental materialization cannot do 1, 3 and 4: it reads the new rows into a
    temporary table, which cannot become a partition, without the locks, and it keeps no
    storage of its own.
-#}
{% materialization fact, adapter='postgres' %}
    {%- set fact = fact_settings() -%}
    {%- set unique_key = config.require('unique_key') -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set target = this.incorporate(type='table') -%}
    {%- set incremental = fact_is_incremental() -%}
    {%- set intermediate = make_intermediate_relation(target) -%}
    {%- set backup = make_backup_relation(target, 'table') -%}
    {{ drop_relation_if_exists(load_cached_relation(intermediate)) }}
    {{ drop_relation_if_exists(load_cached_relation(backup)) }}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {%- if not incremental -%}
        {% call statement('main') -%}
            {{ lock_loaded_tables() }}
            {{ get_create_table_as_sql(False, intermediate, sql) }}
        {%- endcall %}
        {%- if existing is not none and existing.type == 'table' -%}
            {{ adapter.rename_relation(existing, backup) }}
        {%- elif existing is not none -%}
            {{ adapter.drop_relation(existing) }}
        {%- endif -%}
        {{ adapter.rename_relation(intermediate, target) }}
    {%- else -%}
        {#- PostgreSQL keeps the new rows in a table of the fact's schema: a partition that
            takes nearly all of them can then be made of it (`adopt_new_rows`) -#}
        {%- set kept = warehouse_kind() == 'postgres' -%}
        {%- set new_rows = target.incorporate(
            path={'identifier': target.identifier ~ '__new_rows'})
            if kept else make_temp_relation(target) -%}
        {% call statement('new_rows') -%}
            {%- if kept %}
            drop table if exists {{ new_rows }};
            {%- endif %}
            {{ lock_loaded_tables() }}
            {{ get_create_table_as_sql(not kept, new_rows, sql) }}
        {%- endcall %}
        {%- if not config.get('contract').enforced -%}
            {% do adapter.expand_target_column_types(
                from_relation=new_rows, to_relation=target) %}
        {%- endif -%}
        {%- set on_schema_change = incremental_validate_on_schema_change(
            config.get('on_schema_change'), default='ignore') -%}
        {%- set dest_columns = process_schema_changes(on_schema_change, new_rows, existing)
            or adapter.get_columns_in_relation(existing) -%}
        {%- set parts = new_rows_by_partition(target, new_rows, fact) -%}
        {%- set rebuilt = partitions_to_rebuild(target, parts) -%}
        {% call statement('main') -%}
            {{ refresh_asset_columns(target, fact) }}
            {%- if parts | length == 0 %}
            select 0 as nothing_new;
            {%- elif rebuilt %}
            {{ merge_rebuilding_partitions(target, new_rows, unique_key, fact, dest_columns,
                                           parts, rebuilt) }}
            {%- else %}
            {{ get_delete_insert_merge_sql(target, new_rows, unique_key, dest_columns,
                                           replaced_rows_predicates(fact, parts)) }};
            {%- endif %}
            {%- if kept and not rebuilt %}
            drop table {{ new_rows }};
            {%- endif %}
        {%- endcall %}
    {%- endif -%}
    {%- set storage = warehouse_dispatch('fact_storage')(target, fact) -%}
    {%- if storage | trim %}
        {% call statement('storage') -%}{{ storage }}{%- endcall %}
    {%- endif %}
    {% do apply_grants(target, config.get('grants'),
                       should_revoke=should_revoke(existing, not incremental)) %}
    {% do persist_docs(target, model) %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ drop_relation_if_exists(backup) }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target]}) }}
{% endmaterialization %}

{#- Is this build of a fact incremental (the table is there, no full refresh)? dbt's
    is_incremental() answers only for materialized='incremental'. -#}
{% macro fact_is_incremental() %}
    {%- if not execute or model is not defined or model.config.materialized != 'fact'
           or should_full_refresh() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set existing = adapter.get_relation(this.database, this.schema, this.identifier) -%}
    {{ return(existing is not none and existing.type == 'table') }}
{% endmacro %}

{#-
    The bounds of the delete of replaced rows (dbt's `incremental_predicates`, on its
    DBT_INTERNAL_DEST): where a key's row cannot move in time (meta.fact.time_is_stable, the
    default), its old row lies within the times of the new rows of the same partition or
    chunk, so only those that already exist are searched, within those times; a new hour's
    partition is not searched at all. A fact whose rows can move (a corrected record)
    deletes by key alone.
-#}
{% macro replaced_rows_predicates(fact, parts) %}
    {%- if not fact.time_is_stable -%}{{ return([]) }}{%- endif -%}
    {%- set held = parts | selectattr('exists') | list -%}
    {%- if not held -%}{{ return(['false']) }}{%- endif -%}
    {%- set ranges = [] -%}
    {%- for part in held -%}
        {%- do ranges.append('DBT_INTERNAL_DEST.' ~ fact.time_column ~ " between '"
                             ~ part.first ~ "' and '" ~ part.last ~ "'") -%}
    {%- endfor -%}
    {{ return(['(' ~ ranges | join(' or ') ~ ')']) }}
{% endmacro %}
