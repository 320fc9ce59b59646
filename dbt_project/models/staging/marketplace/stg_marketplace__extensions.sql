with

source as (

    select * from {{ source('marketplace', 'marketplace__extensions') }}

),

renamed as (

    select
        extension_id,
        name,
        publisher,
        version,
        category,
        installs,
        updated_at,
        _window_start,
        _window_end,
        _loaded_at
    from source

)

select * from renamed
