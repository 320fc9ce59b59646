{{ config(materialized='aggregate') }}
{{ violations_rollup('1 day') }}
