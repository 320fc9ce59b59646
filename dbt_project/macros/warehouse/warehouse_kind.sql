{#-
    Which warehouse this run builds on: 'timescaledb' or 'postgres' (plain PostgreSQL, as on
    most managed clouds). Detected from the database (is the timescaledb extension
    installed?); forced with the var `warehouse_kind` or the env var HUB_WAREHOUSE_KIND.
    Everything that differs between the two goes through `warehouse_dispatch`, never through
    copies of models.
-#}
{% macro warehouse_kind() %}
    {%- set forced = var('warehouse_kind', env_var('HUB_WAREHOUSE_KIND', 'auto')) | lower -%}
    {%- if forced in ('timescaledb', 'postgres') -%}
        {{ return(forced) }}
    {%- elif forced != 'auto' -%}
        {{ exceptions.raise_compiler_error(
            "warehouse_kind must be 'timescaledb', 'postgres' or 'auto', not '" ~ forced ~ "'"
        ) }}
    {%- endif -%}
    {%- if not execute -%}
        {{ return('postgres') }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(*) from pg_extension where extname = 'timescaledb'"
    ).columns[0].values()[0] -%}
    {{ return('timescaledb' if found > 0 else 'postgres') }}
{% endmacro %}

{#-
    The implementation of macro `name` for this warehouse: `timescaledb__<name>` or
    `postgres__<name>`, falling back to `default__<name>`. Like adapter.dispatch, but keyed
    on the warehouse kind (both kinds use the postgres adapter).
-#}
{% macro warehouse_dispatch(name) %}
    {%- set kind = warehouse_kind() -%}
    {%- for candidate in [kind ~ '__' ~ name, 'default__' ~ name] -%}
        {%- if context.get(candidate) is not none -%}
            {{ return(context[candidate]) }}
        {%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("no implementation of " ~ name ~ " for " ~ kind) }}
{% endmacro %}

{#- `dbt run-operation warehouse_info`: which warehouse path this target builds. -#}
{% macro warehouse_info() %}
    {{ log("warehouse_kind: " ~ warehouse_kind(), info=true) }}
{% endmacro %}
