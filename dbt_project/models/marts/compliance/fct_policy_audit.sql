{{ config(
    materialized='fact',
    unique_key='event_id',
    meta={'fact': {
        'module': 'policy',
        'time_column': 'event_time',
        'index_by': [['policy_id'], ['policy_id', 'action']],
        'segment_by': 'policy_id',
    }},
) }}
-- The policy engine's audit trail, each entry once; the actor pseudonymized.
with

audit_entries as (

    select * from {{ ref('int_audit_entries_deduplicated') }}
    {{ keys_with_new_rows('event_id', ref('stg_policy__audit_entries')) }}

),

final as (

    select
        event_id,
        event_time,
        ingested_at,
        environment,
        event_type,
        audit_id,
        policy_id,
        action,
        actor_id,
        resource,
        _window_start,
        _window_end,
        _loaded_at
    from audit_entries

)

select * from final
