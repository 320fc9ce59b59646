{#-
    Filter for incremental models: rows landed since the last build of this model.
    Landing rows carry `_loaded_at` (set by the load step); a re-loaded window gets a new
    `_loaded_at`, so backfills and re-pulls of old windows flow in too. The lookback covers
    loads that were still committing during the last build (a watermark alone would miss
    them); re-reading those rows is harmless, since incremental models replace by key.
-#}
{% macro new_rows(loaded_at='_loaded_at') %}
    {% if is_incremental() %}
        where {{ loaded_at }} > (
            select coalesce(max(_loaded_at), '-infinity') from {{ this }}
        ) - interval '{{ var("incremental_lookback", "1 hour") }}'
    {% endif %}
{% endmacro %}
