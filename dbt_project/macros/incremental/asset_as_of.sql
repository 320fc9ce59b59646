{#-
    Join a fact to the registry asset as it was at the fact's time (dim_assets is a type 2
    dimension). A fact older than its asset's first known state gets nulls.

    On an incremental build, only the states still valid at the new rows' earliest time
    take part: the join hashes on asset_id and then checks the time against each state of
    the asset, so without that bound its cost would grow with every state the registry
    has ever had (30 states an asset in the transform benchmark after 30 days).
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
        {%- if is_incremental() %}
        and assets.valid_to > (select min({{ time_column }}) from {{ fact }})
        {%- endif %}
{% endmacro %}
