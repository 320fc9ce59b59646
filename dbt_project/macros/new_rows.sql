{#-
    Filter for incremental models: only rows landed after the last build of this model.
    Landing rows carry `_loaded_at` (set by the load step); a re-loaded window gets a new
    `_loaded_at`, so backfills and re-pulls of old windows flow in too.
-#}
{% macro new_rows(loaded_at='_loaded_at') %}
    {% if is_incremental() %}
        where {{ loaded_at }} > (select coalesce(max(_loaded_at), '-infinity') from {{ this }})
    {% endif %}
{% endmacro %}
