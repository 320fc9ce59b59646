{#- One row per `key`: the first delivery of each (by ingest time, then window), for
    modules that deliver a record more than once. -#}
{% macro first_delivery(relation, key='event_id') %}
    select *
    from (
        select
            *,
            row_number() over (
                partition by {{ key }} order by ingested_at, _window_start
            ) as delivery_number
        from {{ relation }}
    ) as deliveries
    where delivery_number = 1
{% endmacro %}
