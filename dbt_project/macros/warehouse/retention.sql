{#-
    `dbt run-operation apply_retention` (the maintain_warehouse DAG runs it daily): enforce
    var('retention') on every fact table (meta.fact) of the project.
    - PostgreSQL: drop the partitions wholly older than the module's retention.
    - TimescaleDB: retention and compression are policies (see fact_storage); this runs
      their jobs now (`CALL run_job`), for deployments without the background scheduler.
    - Both: delete the landing rows of windows past their module's retention (the lake
      keeps them), except the dimensions' (sources with meta.dimension: assets, budgets).
    `--args '{dry_run: true}'` lists what it would do.
-#}
{% macro apply_retention(dry_run=false) %}
    {%- set kind = warehouse_kind() -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and (node.config.meta or {}).get('fact') -%}
        {%- set relation = adapter.get_relation(node.database, node.schema, node.alias) -%}
        {%- if relation is none -%}
            {{ log("retention: " ~ node.alias ~ " not built yet", info=true) }}
        {%- else -%}
            {%- set retention = var('retention')[node.config.meta.fact.module] -%}
            {{ warehouse_dispatch('apply_retention')(relation, retention, dry_run) }}
        {%- endif -%}
    {%- endfor -%}
    {#- the landing tables too: else a full refresh would bring expired facts back -#}
    {%- for source in graph.sources.values()
        if source.source_name in var('retention') and not source.meta.get('dimension') -%}
        {%- set retention = var('retention')[source.source_name] -%}
        {%- set relation = adapter.get_relation(source.database, source.schema, source.identifier) -%}
        {%- if relation is not none -%}
            {%- set condition = "_window_end <= now() - interval '" ~ retention ~ "'" -%}
            {%- if dry_run -%}
                {%- set count = run_query(
                    "select count(*) from " ~ relation ~ " where " ~ condition
                ).columns[0].values()[0] -%}
                {{ log("retention: would delete " ~ count ~ " rows of " ~ relation, info=true) }}
            {%- else -%}
                {% set result = run_query("delete from " ~ relation ~ " where " ~ condition) %}
                {% do adapter.commit() %}
                {{ log("retention: deleted expired windows of " ~ relation, info=true) }}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}

{% macro postgres__apply_retention(relation, retention, dry_run) %}
    {%- set expired = run_query(
        "select name from (" ~ partition_bounds_sql(relation) ~ ") as partitions"
        ~ " where upper <= now() - interval '" ~ retention ~ "' order by lower"
    ).columns[0].values() -%}
    {%- for partition in expired -%}
        {%- set target = relation.incorporate(path={'identifier': partition}) -%}
        {{ log("retention: " ~ ("would drop " if dry_run else "dropping ") ~ target
               ~ " (older than " ~ retention ~ ")", info=true) }}
        {%- if not dry_run -%}
            {% do run_query("drop table " ~ target) %}
        {%- endif -%}
    {%- endfor -%}
    {%- if not dry_run -%}{% do adapter.commit() %}{%- endif -%}
{% endmacro %}

{% macro timescaledb__apply_retention(relation, retention, dry_run) %}
    {%- set jobs = run_query(
        "select job_id, proc_name from timescaledb_information.jobs"
        ~ " where hypertable_schema = '" ~ relation.schema ~ "'"
        ~ " and hypertable_name = '" ~ relation.identifier ~ "'"
        ~ " and proc_name in ('policy_retention', 'policy_compression') order by job_id"
    ) -%}
    {%- for job in jobs.rows -%}
        {{ log("retention: " ~ ("would run " if dry_run else "running ") ~ job[1]
               ~ " job " ~ job[0] ~ " of " ~ relation, info=true) }}
        {%- if not dry_run -%}
            {% do run_query("call run_job(" ~ job[0] ~ ")") %}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}
