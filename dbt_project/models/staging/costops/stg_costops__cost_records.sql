with

source as (

    select * from {{ source('costops', 'costops__cost_records') }}

),

renamed as (

    select
        event_id,
        event_time,
        ingested_at,
        source_module,
        event_type,
        schema_version,
        event_severity,
        environment,
        tags,
        cost_record_id,
        account_id,
        asset_id,
        model_id,
        usage_start,
        usage_end,
        input_tokens,
        output_tokens,
        cost,
        cost_unit,
        record_version,
        cost_usd,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
