{{ config(materialized='aggregate') }}
{{ marketplace_revenue_rollup('1 day') }}
