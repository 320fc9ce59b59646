with

source as (

    select * from {{ source('registry', 'registry__assets') }}

),

renamed as (

    select
        asset_id,
        asset_name,
        category,
        owner,
        tags,
        created_at,
        updated_at,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
