{{ config(materialized='aggregate') }}
{{ compliance_rollup('1 day') }}
