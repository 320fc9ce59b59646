{#-
    incremental_strategy='hub_merge', for the fact tables: dbt's delete+insert by unique key,
    bounded to the time range of the new rows so that it touches only their chunks or
    partitions, not the whole history. A fact whose rows can move in time under the same
    key (a corrected record) sets meta.fact.time_is_stable: false and deletes by key alone.

    The insert is the warehouse's (`insert_fact_rows`):
    - TimescaleDB: into the hypertable, which routes rows to their chunks;
    - PostgreSQL: a day partition that is new, or that the new rows would grow by more than
      var('fact_rebuild_share'), is rebuilt (see `rebuild_day_partition`); the other
      days' rows are inserted into the partitioned table.
-#}
{% macro get_incremental_hub_merge_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set fact = fact_settings() -%}
    {%- set time = fact.time_column -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set key = [key] if key is string else key -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | join(', ') -%}
    {%- set days = new_rows_by_day(source, time) -%}
    {%- if days | length == 0 -%}
        {{ return('select 0 as nothing_new') }}
    {%- endif -%}
    {#- a join, not `key in (select ...)`: the planner may then hash the few target rows in
        the time range rather than every new key -#}
    delete from {{ target }} as facts
    using {{ source }} as new_rows
    where {% for k in key %}facts.{{ k }} = new_rows.{{ k }}{{ ' and ' if not loop.last }}{% endfor %}
    {%- if fact.time_is_stable %}
        and facts.{{ time }} between '{{ days[0].first }}' and '{{ days[-1].last }}'
    {%- endif %};
    {{ warehouse_dispatch('insert_fact_rows')(target, source, fact, columns, days) }}
{% endmacro %}

{#-
    The UTC days the rows of `source` fall in, oldest first, each as a dict: day
    ('YYYY-MM-DD'), start and end (its bounds as timestamptz literals), rows, first and last
    (the day's min and max of `time_column`).
    Rows without a time cannot be placed in a chunk or a partition: a clear error, not a
    silent drop.
-#}
{% macro new_rows_by_day(source, time_column) %}
    {%- set found = run_query(
        "select to_char(day, 'YYYY-MM-DD'), to_char(day + interval '1 day', 'YYYY-MM-DD'),"
        ~ " count(*), min(" ~ time_column ~ ")::text, max(" ~ time_column ~ ")::text"
        ~ " from (select *, date_trunc('day', " ~ time_column ~ " at time zone 'UTC') as day"
        ~ " from " ~ source ~ ") as rows group by day order by day nulls first"
    ) -%}
    {%- set days = [] -%}
    {%- for row in found.rows -%}
        {%- if row[0] is none -%}
            {{ exceptions.raise_compiler_error(
                this ~ ": " ~ row[2] ~ " new rows have no " ~ time_column
                ~ "; a fact row needs its time to be placed"
            ) }}
        {%- endif -%}
        {%- do days.append({
            'day': row[0], 'start': row[0] ~ ' 00:00:00+00', 'end': row[1] ~ ' 00:00:00+00',
            'rows': row[2] | int,
            'first': row[3], 'last': row[4],
        }) -%}
    {%- endfor -%}
    {{ return(days) }}
{% endmacro %}

{% macro timescaledb__insert_fact_rows(target, source, fact, columns, days) %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }};
{% endmacro %}

{% macro postgres__insert_fact_rows(target, source, fact, columns, days) %}
    {%- set time = fact.time_column -%}
    {%- set rebuilt = [] -%}
    {#- a table from before partitioning: the post-hook fact_storage() converts it -#}
    {%- if is_partitioned(target) -%}
        {%- for day in days -%}
            {%- set partition = day_partition(target, day.day) -%}
            {%- set existing = partition_rows(partition) -%}
            {%- if existing is none or day.rows > var('fact_rebuild_share') * existing -%}
                {%- do rebuilt.append(day) -%}
                {{ rebuild_day_partition(target, partition, source, fact, columns, day,
                                         existing is not none) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if rebuilt | length < days | length %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
    {%- for day in rebuilt %}
    {{ 'where not (' if loop.first else '    or ' -}}
        {{ time }} >= '{{ day.start }}' and {{ time }} < '{{ day.end }}'
        {{- ')' if loop.last }}
    {%- endfor %};
    {%- endif %}
{% endmacro %}

{#-
    PostgreSQL: a day partition of `target` built whole: a new table takes the partition's
    rows left after the delete and the day's new rows, then its indexes are built in bulk
    (a sort per index), and it replaces the partition. Inserting millions of rows into a
    table with four indexes costs a B-tree descent per row per index, several times the
    cost of building the same indexes afresh. A CHECK constraint equal to the partition's
    bounds spares ATTACH a scan. The swap runs last, in the build's transaction, so readers
    wait only for it, and see the old day or the new one.
-#}
{% macro rebuild_day_partition(target, partition, source, fact, columns, day, exists) %}
    {%- set time = fact.time_column -%}
    {%- set lower = "'" ~ day.start ~ "'" -%}
    {%- set upper = "'" ~ day.end ~ "'" -%}
    {%- set building = partition.incorporate(
        path={'identifier': partition.identifier ~ '__rebuild'}) -%}
    {%- set indexes = fact_index_columns(fact) -%}
    set local maintenance_work_mem = '{{ var("fact_rebuild_memory") }}';
    drop table if exists {{ building }};
    create table {{ building }} (
        like {{ target }} including defaults,
        constraint {{ building.identifier }}_bounds
            check ({{ time }} is not null and {{ time }} >= {{ lower }} and {{ time }} < {{ upper }})
    );
    {%- if exists %}
    insert into {{ building }} ({{ columns }})
    select {{ columns }} from {{ partition }};
    {%- endif %}
    insert into {{ building }} ({{ columns }})
    select {{ columns }} from {{ source }}
    where {{ time }} >= {{ lower }} and {{ time }} < {{ upper }};
    {%- for index in indexes %}
    create index {{ building.identifier }}_i{{ loop.index }} on {{ building }} ({{ index }});
    {%- endfor %}
    {%- if exists %}
    drop table {{ partition }};
    {%- endif %}
    alter table {{ building }} rename to {{ partition.identifier }};
    {%- for index in indexes %}
    alter index {{ partition.schema }}.{{ building.identifier }}_i{{ loop.index }}
        rename to {{ partition.identifier }}_i{{ loop.index }};
    {%- endfor %}
    alter table {{ partition }} rename constraint {{ building.identifier }}_bounds
        to {{ partition.identifier }}_bounds;
    alter table {{ target }} attach partition {{ partition }}
        for values from ({{ lower }}) to ({{ upper }});
    alter table {{ partition }} drop constraint {{ partition.identifier }}_bounds;
    analyze {{ partition }};
{% endmacro %}

{#- PostgreSQL: the rows of a table, from its statistics (counted if it has none yet);
    none if there is no such table. -#}
{% macro partition_rows(relation) %}
    {%- set estimate = run_query(
        "select reltuples::bigint from pg_class where oid = to_regclass('" ~ relation ~ "')"
    ).columns[0].values() -%}
    {%- if estimate | length == 0 -%}{{ return(none) }}{%- endif -%}
    {%- if estimate[0] >= 0 -%}{{ return(estimate[0]) }}{%- endif -%}
    {{ return(run_query("select count(*) from " ~ relation).columns[0].values()[0]) }}
{% endmacro %}
