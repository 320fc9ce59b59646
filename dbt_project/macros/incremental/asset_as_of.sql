{#-
    Join a fact to the registry asset as it was at the fact's time (dim_assets is a type 2
    dimension). A fact older than its asset's first known state gets nulls.
-#}
{% macro asset_as_of(fact, time_column) %}
    left join {{ ref('dim_assets') }} as assets
        on assets.asset_id = {{ fact }}.asset_id
        and {{ fact }}.{{ time_column }} >= assets.valid_from
        and {{ fact }}.{{ time_column }} < assets.valid_to
{% endmacro %}
