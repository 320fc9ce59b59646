-- Cost records are at-least-once, and a correction re-sends a record with a higher
-- record_version: per cost_record_id the latest version wins (the last delivery of it on
-- a tie).
with

cost_records as (

    select * from {{ ref('stg_costops__cost_records') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by cost_record_id
            order by record_version desc, ingested_at desc, _window_start desc
        ) as version_rank
    from cost_records

),

final as (

    select * from ranked where version_rank = 1

)

select * from final
