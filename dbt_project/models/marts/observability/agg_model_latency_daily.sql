{{ config(materialized='aggregate') }}
{{ model_latency_rollup('1 day') }}
