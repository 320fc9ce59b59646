{#-
    Join a fact to the registry asset as it was at the fact's time (dim_assets is a type 2
    dimension). A fact older than its asset's first known state gets nulls. A state that
    comes after the facts it covers were merged reaches them later: `refresh_asset_columns`.

    On an incremental build, only the states still valid at the new rows' earliest time
    take part: the join hashes on asset_id and then checks the time against each state of
    the asset, so without that bound its cost would grow with every state the registry
    has ever had.
    The bound reads `fact` a second time, so PostgreSQL materializes a CTE passed as `fact`
    (writes all its rows out, to disk past work_mem) unless it is declared
    `as not materialized`: right for a plain read of staging (fct_requests), not for a
    CTE that deduplicates, which is better computed once.
-#}
{% macro asset_as_of(fact, time_column) %}
    left join {{ ref('dim_assets') }} as assets
        on assets.asset_id = {{ fact }}.asset_id
        and {{ fact }}.{{ time_column }} >= assets.valid_from
        and {{ fact }}.{{ time_column }} < assets.valid_to
        {%- if fact_is_incremental() %}
        and assets.valid_to > (select min({{ time_column }}) from {{ fact }})
        {%- endif %}
{% endmacro %}

{#-
    The asset columns of a fact that joins `asset_as_of` (none for one that does not: it
    does not depend on dim_assets), each with the SQL that sets it from the state `assets`
    (and the fact row `facts`): asset_name, asset_category and asset_owner from the state,
    unless meta.fact.asset_columns says otherwise for a column.
-#}
{% macro asset_columns(fact) %}
    {%- set joined = namespace(dim_assets=false) -%}
    {%- for node_id in (model.depends_on.nodes if model is defined else []) -%}
        {%- if node_id.split('.')[-1] == 'dim_assets' -%}
            {%- set joined.dim_assets = true -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not joined.dim_assets -%}{{ return({}) }}{%- endif -%}
    {%- set columns = {
        'asset_name': 'assets.asset_name',
        'asset_category': 'assets.category',
        'asset_owner': 'assets.owner',
    } -%}
    {%- do columns.update(fact.get('asset_columns', {})) -%}
    {{ return(columns) }}
{% endmacro %}

{#-
    An incremental build of a fact that joins `asset_as_of` reads only the rows landed since
    its last build (`new_rows`), so a state of an asset that the registry delivers after
    the facts it covers would not reach them. Before the new rows are merged, this updates
    the fact rows already held that a state loaded since the fact's watermark (its newest
    `_loaded_at`) covers (same asset, time within the state's [valid_from, valid_to)), where
    their asset columns differ from it: a new state, a corrected one, or a first one for
    facts that came before their asset's registration.

    The states loaded within var('asset_state_lookback') before the watermark are applied
    again: one loaded while the last build ran, after dim_assets was built and before the
    fact read its new rows, is older than the watermark but was not joined. That re-checks
    only the facts those few states cover, not every fact row loaded within the lookback.

    With no state new to the fact (most hours), nothing runs: the states are counted first.
-#}
{% macro refresh_asset_columns(target, fact) %}
    {%- if not fact.asset_columns -%}{{ return('') }}{%- endif -%}
    {%- set time = fact.time_column -%}
    {%- set since = newest(target) ~ " - interval '" ~ var('asset_state_lookback') ~ "'" -%}
    {%- set states = run_query(
        "select count(*) from " ~ ref('dim_assets') ~ " where _loaded_at > " ~ since
    ).columns[0].values()[0] -%}
    {%- if states == 0 -%}{{ return('') }}{%- endif -%}
    {%- set columns = fact.asset_columns.keys() | list | sort -%}
    {%- set values = [] -%}
    {%- for column in columns -%}{%- do values.append(fact.asset_columns[column]) -%}{%- endfor -%}
    update {{ target }} as facts
    set ({{ columns | join(', ') }}) = row({{ values | join(', ') }})
    from {{ ref('dim_assets') }} as assets
    where assets._loaded_at > {{ since }}
        and facts.asset_id = assets.asset_id
        and facts.{{ time }} >= assets.valid_from
        and facts.{{ time }} < assets.valid_to
        and (facts.{{ columns | join(', facts.') }}) is distinct from ({{ values | join(', ') }});
{% endmacro %}
