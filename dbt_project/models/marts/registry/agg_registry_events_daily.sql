{{ config(materialized='aggregate') }}
{{ registry_events_rollup('1 day') }}
