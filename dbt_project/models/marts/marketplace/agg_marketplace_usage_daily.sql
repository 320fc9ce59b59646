{{ config(materialized='aggregate') }}
{{ marketplace_usage_rollup('1 day') }}
