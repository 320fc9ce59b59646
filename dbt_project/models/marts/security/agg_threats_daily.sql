{{ config(materialized='aggregate') }}
{{ threats_rollup('1 day') }}
