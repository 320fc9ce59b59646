{{ config(post_hook="analyze {{ this }}") }}
-- Registry assets as a slowly changing dimension (type 2): one row per state of an asset,
-- valid from its updated_at until the next state's. Facts join on their own event time
-- (asset_as_of); a state's _loaded_at (its newest delivery's) tells the facts' builds which
-- states came since their last one (refresh_asset_columns). Analyzed once built: those
-- builds' updates join on it.
with

asset_states as (

    select distinct on (asset_id, updated_at)
        asset_id,
        asset_name,
        category,
        owner,
        tags,
        created_at,
        updated_at,
        max(_loaded_at) over (partition by asset_id, updated_at) as _loaded_at
    from {{ ref('stg_registry__assets') }}
    order by asset_id, updated_at, _window_start desc

),

final as (

    select
        asset_id,
        asset_name,
        category,
        owner,
        tags,
        created_at,
        case
            -- an asset's first known state holds from its creation
            when row_number() over (partition by asset_id order by updated_at) = 1
                then least(created_at, updated_at)
            else updated_at
        end as valid_from,
        coalesce(
            lead(updated_at) over (partition by asset_id order by updated_at),
            'infinity'::timestamptz
        ) as valid_to,
        _loaded_at
    from asset_states

)

select * from final
