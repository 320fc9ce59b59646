with

source as (

    select * from {{ source('registry', 'registry__versions') }}

),

renamed as (

    select
        asset_id,
        version,
        status,
        published_at,
        updated_at,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
