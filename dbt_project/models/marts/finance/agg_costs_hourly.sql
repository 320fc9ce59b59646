{{ config(materialized='aggregate') }}
{{ costs_rollup('1 hour') }}
