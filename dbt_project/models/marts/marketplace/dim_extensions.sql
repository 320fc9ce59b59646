-- Marketplace extensions as a slowly changing dimension (type 2): one row per state of an
-- extension, valid from its updated_at until the next state's. Usage and revenue facts
-- join on extension_id and their period_start.
with

extension_states as (

    select distinct on (extension_id, updated_at)
        extension_id,
        name as extension_name,
        publisher,
        version,
        category,
        installs,
        updated_at
    from {{ ref('stg_marketplace__extensions') }}
    order by extension_id, updated_at, _window_start desc

),

final as (

    select
        extension_id,
        extension_name,
        publisher,
        version,
        category,
        installs,
        updated_at as valid_from,
        coalesce(
            lead(updated_at) over (partition by extension_id order by updated_at),
            'infinity'::timestamptz
        ) as valid_to
    from extension_states

)

select * from final
