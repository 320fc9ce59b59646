with

source as (

    select * from {{ source('costops', 'costops__budgets') }}

),

renamed as (

    select
        budget_id,
        account_id,
        period,
        "limit" as limit_amount,
        currency,
        alert_threshold_percent,
        updated_at,
        limit_usd,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
