{#-
    The PostgreSQL side of the `fact` materialization: where a fact's new rows go among its
    partitions, and the partitions rebuilt whole rather than inserted into. Inserting
    millions of rows into a partition with four indexes costs a B-tree descent per row per
    index, several times the cost of building the same indexes afresh; so a partition that
    is new, or that the new rows would grow by more than var('fact_rebuild_share'), is
    built as a table of its own (its surviving and new rows, then its indexes in bulk) that
    replaces it. The other partitions' rows are inserted.
-#}

{#- The partitions of `parts` (as new_rows_by_partition) that the merge rebuilds: none on
    TimescaleDB (its chunks take rows as they come) and on a table not yet partitioned. -#}
{% macro partitions_to_rebuild(target, parts) %}
    {%- if warehouse_kind() != 'postgres' or not is_partitioned(target) -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set rebuilt = [] -%}
    {%- for part in parts -%}
        {%- set partition = target.incorporate(path={'identifier': part.name}) -%}
        {%- set existing = partition_rows(partition) if part.exists else none -%}
        {%- if existing is none or part.rows > var('fact_rebuild_share') * existing -%}
            {%- do rebuilt.append(part) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(rebuilt) }}
{% endmacro %}

{#-
    The merge of `source` (the new rows' table, `<fact>__new_rows`) into `target` when some
    partitions are rebuilt: the replaced rows are deleted first (bounded as
    `replaced_rows_predicates` says), then each rebuilt partition is built
    (`rebuild_partition`; the one that takes nearly all the new rows is made of `source`
    itself: `adopt_new_rows`), and the other partitions' rows are inserted. `source` is
    dropped unless a partition adopted it.
-#}
{% macro merge_rebuilding_partitions(target, source, unique_key, fact, dest_columns, parts, rebuilt) %}
    {%- set key = [unique_key] if unique_key is string else unique_key -%}
    {%- set predicates = replaced_rows_predicates(fact, parts) -%}
    {%- if predicates != ['false'] %}
    {#- a join, not `key in (select ...)`: the planner may then hash the few target rows in
        the time range rather than every new key -#}
    delete from {{ target }} as DBT_INTERNAL_DEST
    using {{ source }} as new_rows
    where {% for k in key %}DBT_INTERNAL_DEST.{{ k }} = new_rows.{{ k }}{{ ' and ' if not loop.last }}{% endfor %}
    {%- for predicate in predicates %}
        and {{ predicate }}
        and {{ predicate | replace('DBT_INTERNAL_DEST.', 'new_rows.') }}
    {%- endfor %};
    {%- endif %}
    {%- set time = fact.time_column -%}
    {%- set columns = dest_columns | map(attribute='quoted') | join(', ') -%}
    {#- the new rows' table becomes the rebuilt partition that takes nearly all of them: the
        rows it sheds for other partitions would stay in it as dead space (a backfill of
        many days is copied partition by partition) -#}
    {%- set largest = rebuilt | sort(attribute='rows') | last -%}
    {%- set adopted = largest if largest.rows >= 0.9 * (parts | sum(attribute='rows'))
        and same_columns(source, dest_columns) else none -%}
    {%- for part in rebuilt if adopted is none or part.name != adopted.name %}
    {{ rebuild_partition(target, target.incorporate(path={'identifier': part.name}),
                         source, fact, columns, part) }}
    {%- endfor %}
    {%- if rebuilt | length < parts | length %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
    {%- for part in rebuilt %}
    {{ 'where not (' if loop.first else '    or ' -}}
        {{ time }} >= '{{ part.start }}' and {{ time }} < '{{ part.end }}'
        {{- ')' if loop.last }}
    {%- endfor %};
    {%- endif %}
    {%- if adopted is not none %}
    {{ adopt_new_rows(target, target.incorporate(path={'identifier': adopted.name}),
                      source, fact, columns, adopted, alone=parts | length == 1) }}
    {%- else %}
    drop table {{ source }};
    {%- endif %}
{% endmacro %}

{#-
    The new rows of `source` grouped by the partition of `target` (a PostgreSQL partition,
    a TimescaleDB day chunk) they fall in, oldest first, each a dict: name (the partition's
    table), start and end (its bounds, timestamptz literals), exists (whether the partition
    does: whether the fact may hold rows of its times already; always on TimescaleDB and
    on a table not yet partitioned), rows, first and last (the min and max of the fact's
    time in it).
    Rows without a time cannot be placed in a chunk or a partition: a clear error, not a
    silent drop.
-#}
{% macro new_rows_by_partition(target, source, fact) %}
    {{ return(warehouse_dispatch('new_rows_by_partition')(target, source, fact)) }}
{% endmacro %}

{#- TimescaleDB: by UTC day (its chunks; only the time range is used). -#}
{% macro timescaledb__new_rows_by_partition(target, source, fact) %}
    {%- set parts = placed_rows(source, fact.time_column,
        "select null::text as name, null::timestamptz as lower, null::timestamptz as upper"
        ~ " where false", '1 day') -%}
    {#- a chunk may hold rows of any day: the merge deletes from each -#}
    {%- for part in parts -%}{%- do part.update({'exists': true}) -%}{%- endfor -%}
    {{ return(parts) }}
{% endmacro %}

{#-
    PostgreSQL: an hour of rows goes to the partition holding it, or to a new one of the
    fact's partition span (var('fact_partition_span')): a UTC day
    (`<fact>_pYYYYMMDD`) or hour (`<fact>_pYYYYMMDD_HH`). A day whose span another
    partition overlaps (the span was changed from hours to days) gets hour partitions.
-#}
{% macro postgres__new_rows_by_partition(target, source, fact) %}
    {%- set parts = placed_rows(source, fact.time_column, partition_bounds_sql(target),
                                fact.partition_span) -%}
    {#- a table not partitioned yet (fact_storage partitions it at the end of the build)
        holds rows of any time -#}
    {%- if not is_partitioned(target) -%}
        {%- for part in parts -%}{%- do part.update({'exists': true}) -%}{%- endfor -%}
    {%- endif -%}
    {{ return(parts) }}
{% endmacro %}

{#- The partitions of `target` (none if it is not partitioned or does not exist) as SQL:
    name, lower, upper (timestamptz). -#}
{% macro partition_bounds_sql(target) %}
    {{ return(
        "select part.relname::text as name, bounds[1]::timestamptz as lower,"
        ~ " bounds[2]::timestamptz as upper"
        ~ " from pg_inherits join pg_class as part on part.oid = pg_inherits.inhrelid"
        ~ " cross join lateral regexp_match(pg_get_expr(part.relpartbound, part.oid),"
        ~ " $bounds$FROM \('([^']*)'\) TO \('([^']*)'\)$bounds$) as bounds"
        ~ " where pg_inherits.inhparent = to_regclass('" ~ target ~ "')"
    ) }}
{% endmacro %}

{#- The rows of `source` by hour, each hour placed in the partition of `partitions_sql`
    that holds it, else in a new one: the UTC `span` holding it if no partition overlaps
    that, else its hour. One row per partition, as new_rows_by_partition says. -#}
{% macro placed_rows(source, time_column, partitions_sql, span) %}
    {%- set unit = {'1 day': 'day', '1 hour': 'hour'}[span] -%}
    {%- set found = run_query(
        "with hours as ("
        ~ " select date_trunc('hour', " ~ time_column ~ " at time zone 'UTC') at time zone 'UTC'"
        ~ " as hour, count(*) as n, min(" ~ time_column ~ ") as first,"
        ~ " max(" ~ time_column ~ ") as last"
        ~ " from " ~ source ~ " group by 1),"
        ~ " partitions as (" ~ partitions_sql ~ "),"
        ~ " placed as (select hours.*, partitions.name, partitions.lower, partitions.upper,"
        ~ " date_trunc('" ~ unit ~ "', hours.hour at time zone 'UTC') at time zone 'UTC' as spanned"
        ~ " from hours left join partitions"
        ~ " on hours.hour >= partitions.lower and hours.hour < partitions.upper),"
        ~ " fresh as (select placed.*, not exists (select from partitions"
        ~ " where partitions.lower < spanned + interval '" ~ span ~ "'"
        ~ " and partitions.upper > spanned) as spans_free from placed),"
        ~ " bounded as (select fresh.*,"
        ~ " coalesce(lower, case when spans_free then spanned else hour end) as part_lower,"
        ~ " coalesce(upper, case when spans_free then spanned + interval '" ~ span ~ "'"
        ~ " else hour + interval '1 hour' end) as part_upper from fresh)"
        ~ " select name, to_char(part_lower at time zone 'UTC', 'YYYYMMDD')"
        ~ " || case when part_upper - part_lower < interval '1 day'"
        ~ " then to_char(part_lower at time zone 'UTC', '_HH24') else '' end,"
        ~ " to_char(part_lower at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS+00'),"
        ~ " to_char(part_upper at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS+00'),"
        ~ " sum(n), min(first)::text, max(last)::text"
        ~ " from bounded group by 1, 2, 3, 4 order by 3 nulls first"
    ) -%}
    {%- set parts = [] -%}
    {%- for row in found.rows -%}
        {%- if row[2] is none -%}
            {{ exceptions.raise_compiler_error(
                this ~ ": " ~ row[4] ~ " new rows have no " ~ time_column
                ~ "; a fact row needs its time to be placed"
            ) }}
        {%- endif -%}
        {%- do parts.append({
            'name': row[0] or this.identifier ~ '_p' ~ row[1], 'exists': row[0] is not none,
            'start': row[2], 'end': row[3], 'rows': row[4] | int,
            'first': row[5], 'last': row[6],
        }) -%}
    {%- endfor -%}
    {{ return(parts) }}
{% endmacro %}

{#-
    PostgreSQL: a partition of `target` built whole: a new table takes the partition's
    rows left after the delete and its new rows, then its indexes are built in bulk
    (a sort per index), and it replaces the partition (`swap_partition`). Inserting millions
    of rows into a table with four indexes costs a B-tree descent per row per index, several
    times the cost of building the same indexes afresh. A CHECK constraint equal to the
    partition's bounds spares ATTACH a scan. The new table takes the fact's NOT NULL and
    CHECK constraints (its contract's), which ATTACH requires of a partition.
-#}
{% macro rebuild_partition(target, partition, source, fact, columns, part) %}
    {%- set time = fact.time_column -%}
    {%- set building = partition.incorporate(
        path={'identifier': partition.identifier ~ '__rebuild'}) -%}
    drop table if exists {{ building }};
    create table {{ building }} (
        like {{ target }} including defaults including constraints,
        constraint {{ building.identifier }}_bounds check ({{ in_partition(time, part) }})
    );
    {%- if part.exists %}
    insert into {{ building }} ({{ columns }})
    select {{ columns }} from {{ partition }};
    {%- endif %}
    insert into {{ building }} ({{ columns }})
    select {{ columns }} from {{ source }}
    where {{ in_partition(time, part) }};
    {{ swap_partition(target, partition, building, fact, part) }}
{% endmacro %}

{#-
    PostgreSQL: the partition that takes nearly all the new rows (90 %: an hourly build's
    new hour), built from the new rows' table itself (`<fact>__new_rows`): the few rows of
    other partitions leave it (they have been merged), the partition's rows left after the
    delete join it, and it replaces the partition (`swap_partition`). The new rows are not
    copied again. That table was made from the contract as the fact was, so it has the
    constraints ATTACH requires of a partition: the contract's NOT NULL and CHECKs, these
    under the contract's names (ATTACH matches CHECKs by name, and an unnamed one would be
    named after the table it was made as).
-#}
{% macro adopt_new_rows(target, partition, source, fact, columns, part, alone) %}
    {%- set time = fact.time_column -%}
    {%- if not alone %}
    delete from {{ source }} where not ({{ in_partition(time, part) }});
    {%- endif %}
    {%- if part.exists %}
    insert into {{ source }} ({{ columns }})
    select {{ columns }} from {{ partition }};
    {%- endif %}
    alter table {{ source }} add constraint {{ source.identifier }}_bounds
        check ({{ in_partition(time, part) }});
    {{ swap_partition(target, partition, source, fact, part) }}
{% endmacro %}

{#- A fact row's time within a partition's bounds (`part`, as new_rows_by_partition). -#}
{% macro in_partition(time, part) -%}
    {{ time }} is not null and {{ time }} >= '{{ part.start }}' and {{ time }} < '{{ part.end }}'
{%- endmacro %}

{#-
    PostgreSQL: `built` (a table with the CHECK constraint `<built>_bounds` of the
    partition's bounds, which spares ATTACH a scan) gets the fact's indexes, built in bulk,
    and replaces `partition` under its name. The swap runs last, in the build's transaction,
    so readers wait only for it, and see the old partition or the new one.
-#}
{% macro swap_partition(target, partition, built, fact, part) %}
    {%- set indexes = fact_index_columns(fact) -%}
    set local maintenance_work_mem = '{{ var("fact_rebuild_memory") }}';
    {%- for index in indexes %}
    create index {{ built.identifier }}_i{{ loop.index }} on {{ built }} ({{ index }});
    {%- endfor %}
    {%- if part.exists %}
    drop table {{ partition }};
    {%- endif %}
    alter table {{ built }} rename to {{ partition.identifier }};
    {%- for index in indexes %}
    alter index {{ partition.schema }}.{{ built.identifier }}_i{{ loop.index }}
        rename to {{ partition.identifier }}_i{{ loop.index }};
    {%- endfor %}
    alter table {{ partition }} rename constraint {{ built.identifier }}_bounds
        to {{ partition.identifier }}_bounds;
    alter table {{ target }} attach partition {{ partition }}
        for values from ('{{ part.start }}') to ('{{ part.end }}');
    alter table {{ partition }} drop constraint {{ partition.identifier }}_bounds;
    analyze {{ partition }};
{% endmacro %}

{#- Whether `relation` has the fact's columns (`dest_columns`, as dbt read them from the
    fact), by name and type, and no others: what a table needs to become a partition. -#}
{% macro same_columns(relation, dest_columns) %}
    {%- set found = [] -%}
    {%- for columns in [adapter.get_columns_in_relation(relation), dest_columns] -%}
        {%- set typed = [] -%}
        {%- for column in columns -%}
            {%- do typed.append(column.name ~ ' ' ~ column.data_type) -%}
        {%- endfor -%}
        {%- do found.append(typed | sort) -%}
    {%- endfor -%}
    {{ return(found[0] == found[1]) }}
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
