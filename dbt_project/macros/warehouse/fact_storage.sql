{#-
    Storage of the fact tables (materialized='fact'), declared in each fact's config:

        meta={'fact': {'module': 'observatory', 'time_column': 'event_time',
                       'index_by': [['asset_id'], ['asset_id', 'model_id']]}}

    and put in place by the materialization at the end of every build (a no-op once there):
    - TimescaleDB: a hypertable chunked by day, with compression of chunks older than
      var('compress_after') and the module's retention (var('retention')) as policies.
    - PostgreSQL: a table partitioned by day (`<table>_pYYYYMMDD`), or by hour
      (`<table>_pYYYYMMDD_HH`) for the modules var('fact_partition_span') says so;
      `apply_retention` drops the partitions past the module's retention.
    Both get the seed's indexes: (time desc), (<index_by...>, time desc) for each entry, and
    one on _loaded_at, which incremental builds filter on.
-#}
{% macro fact_settings() %}
    {%- set fact = (config.get('meta') or {}).get('fact') -%}
    {%- if fact is none or fact.get('time_column') is none or fact.get('module') is none -%}
        {{ exceptions.raise_compiler_error(
            "fact model " ~ this ~ " needs meta.fact.module and meta.fact.time_column"
        ) }}
    {%- endif -%}
    {%- set retention = var('retention') -%}
    {%- if fact.module not in retention -%}
        {{ exceptions.raise_compiler_error(
            "no retention for module '" ~ fact.module ~ "' in var('retention')"
        ) }}
    {%- endif -%}
    {{ return({
        'module': fact.module,
        'time_column': fact.time_column,
        'index_by': fact.get('index_by', []),
        'segment_by': fact.get('segment_by', 'asset_id'),
        'time_is_stable': fact.get('time_is_stable', true),
        'retention': retention[fact.module],
        'partition_span': partition_span(fact.module),
        'asset_columns': asset_columns(fact),
    }) }}
{% endmacro %}

{#- PostgreSQL: the span of a module's new fact partitions, var('fact_partition_span'). -#}
{% macro partition_span(module) %}
    {%- set spans = var('fact_partition_span') -%}
    {%- set span = spans.get(module, spans.get('default', '1 day')) -%}
    {%- if span not in ('1 day', '1 hour') -%}
        {{ exceptions.raise_compiler_error(
            "var('fact_partition_span') of '" ~ module ~ "' is '" ~ span
            ~ "': a fact partition spans '1 day' or '1 hour'"
        ) }}
    {%- endif -%}
    {{ return(span) }}
{% endmacro %}

{#- The column lists of a fact's indexes: the seed's (time desc), (<index_by...>, time desc)
    for each entry, and _loaded_at. -#}
{% macro fact_index_columns(fact) %}
    {%- set time = fact.time_column -%}
    {%- set indexes = [] -%}
    {%- for columns in [[]] + fact.index_by -%}
        {%- do indexes.append((columns + [time ~ ' desc']) | join(', ')) -%}
    {%- endfor -%}
    {%- do indexes.append('_loaded_at') -%}
    {{ return(indexes) }}
{% endmacro %}

{% macro fact_indexes(relation, fact) %}
    {%- for columns in fact_index_columns(fact) %}
    create index if not exists
        {{ relation.identifier }}__{{ columns | replace(' desc', '') | replace(', ', '_') }}
        on {{ relation }} ({{ columns }});
    {%- endfor %}
{% endmacro %}

{% macro timescaledb__fact_storage(relation, fact) %}
    {%- set found = run_query(
        "select count(*) from timescaledb_information.hypertables"
        ~ " where hypertable_schema = '" ~ relation.schema ~ "'"
        ~ " and hypertable_name = '" ~ relation.identifier ~ "'"
    ).columns[0].values()[0] -%}
    {%- if found > 0 -%}{{ return('') }}{%- endif -%}
    select create_hypertable(
        '{{ relation }}',
        by_range('{{ fact.time_column }}', interval '1 day'),
        create_default_indexes => false,
        migrate_data => true
    );
    {{ fact_indexes(relation, fact) }}
    alter table {{ relation }} set (
        timescaledb.compress,
        timescaledb.compress_segmentby = '{{ fact.segment_by }}',
        timescaledb.compress_orderby = '{{ fact.time_column }} desc'
    );
    select add_compression_policy(
        '{{ relation }}', compress_after => interval '{{ var("compress_after") }}'
    );
    select add_retention_policy('{{ relation }}', drop_after => interval '{{ fact.retention }}');
{% endmacro %}

{% macro postgres__fact_storage(relation, fact) %}
    {%- if is_partitioned(relation) -%}{{ return('') }}{%- endif -%}
    {%- set unpartitioned = relation.incorporate(
        path={'identifier': relation.identifier ~ '__unpartitioned'}) -%}
    {%- set backup = relation.incorporate(
        path={'identifier': relation.identifier ~ '__dbt_backup'}) -%}
    -- a full refresh keeps the old table as a backup until commit: its partitions hold the
    -- names the new ones take
    drop table if exists {{ backup }} cascade;
    alter table {{ relation }} rename to {{ unpartitioned.identifier }};
    -- with the contract's constraints: the partitions inherit them, and a table that becomes
    -- a partition later must have them (fact_partitions)
    create table {{ relation }} (
        like {{ unpartitioned }} including defaults including constraints
    ) partition by range ({{ fact.time_column }});
    {%- for part in postgres__new_rows_by_partition(relation, relation, fact) %}
    create table {{ relation.incorporate(path={'identifier': part.name}) }}
        partition of {{ relation }} for values from ('{{ part.start }}') to ('{{ part.end }}');
    {%- endfor %}
    insert into {{ relation }} select * from {{ unpartitioned }};
    drop table {{ unpartitioned }};
    {{ fact_indexes(relation, fact) }}
{% endmacro %}

{#- PostgreSQL: is `relation` a partitioned table (not a plain one that fact_storage
    has yet to partition)? -#}
{% macro is_partitioned(relation) %}
    {{ return(run_query(
        "select relkind = 'p' from pg_class where oid = '" ~ relation ~ "'::regclass"
    ).columns[0].values()[0]) }}
{% endmacro %}
