{{ config(post_hook="analyze {{ this }}") }}
-- Registry assets as a slowly changing dimension (type 2): one row per state of an asset,
-- valid from the time it was first seen until the next state's. Every observation of an
-- asset is a state: a listing of /assets (at its updated_at) and a registry event that
-- carries the asset's name, category or owner (at the event's time), so a change inside
-- one pull window, which the listing shows only as its last state, is kept at the time it
-- held. A column an observation does not carry keeps its previous value; no state holds
-- before it was first seen. Facts join on their own event time (asset_as_of); a state's
-- _loaded_at tells the facts' builds which states came since their last one
-- (refresh_asset_columns). Analyzed once built: those builds' updates join on it.
with

listed as (

    select
        asset_id,
        updated_at as observed_at,
        asset_name,
        category,
        owner,
        tags,
        created_at,
        0 as source_rank,
        _window_start,
        _loaded_at
    from {{ ref('stg_registry__assets') }}

),

carried_by_events as (

    select
        asset_id,
        event_time as observed_at,
        asset_name,
        category,
        owner,
        null::text as tags,
        null::timestamptz as created_at,
        1 as source_rank,
        _window_start,
        _loaded_at
    from {{ ref('stg_registry__events') }}
    where coalesce(asset_name, category, owner) is not null

),

observations as (

    -- one observation per asset and time: a listing over an event, then the newest window
    select distinct on (asset_id, observed_at)
        *,
        max(_loaded_at) over (partition by asset_id, observed_at) as delivered_at
    from (select * from listed union all select * from carried_by_events) as seen
    order by asset_id, observed_at, source_rank, _window_start desc

),

numbered as (

    -- each column's run of observations since its last stated value
    select
        *,
        count(asset_name) over asset_history as asset_name_run,
        count(category) over asset_history as category_run,
        count(owner) over asset_history as owner_run,
        count(tags) over asset_history as tags_run,
        count(created_at) over asset_history as created_at_run,
        -- a late observation changes the states after it too: they count as delivered then
        max(delivered_at) over asset_history as _loaded_at_so_far
    from observations
    window asset_history as (partition by asset_id order by observed_at)

),

states as (

    select
        asset_id,
        observed_at,
        first_value(asset_name) over (partition by asset_id, asset_name_run order by observed_at)
            as asset_name,
        first_value(category) over (partition by asset_id, category_run order by observed_at)
            as category,
        first_value(owner) over (partition by asset_id, owner_run order by observed_at) as owner,
        first_value(tags) over (partition by asset_id, tags_run order by observed_at) as tags,
        first_value(created_at) over (partition by asset_id, created_at_run order by observed_at)
            as created_at,
        _loaded_at_so_far
    from numbered

),

marked as (

    -- an observation that repeats the state before it is no new state
    select
        *,
        row_number() over asset_history = 1
        or (asset_name, category, owner, tags, created_at) is distinct from (
            lag(asset_name) over asset_history,
            lag(category) over asset_history,
            lag(owner) over asset_history,
            lag(tags) over asset_history,
            lag(created_at) over asset_history
        ) as is_new_state
    from states
    window asset_history as (partition by asset_id order by observed_at)

),

grouped as (

    select
        *,
        count(*) filter (where is_new_state) over (
            partition by asset_id order by observed_at
        ) as state_number
    from marked

),

delivered as (

    -- a state counts as delivered when its newest repeat was (a refresh is harmless)
    select
        *,
        max(_loaded_at_so_far) over (partition by asset_id, state_number) as _loaded_at
    from grouped

),

final as (

    select
        asset_id,
        asset_name,
        category,
        owner,
        tags,
        created_at,
        observed_at as valid_from,
        coalesce(
            lead(observed_at) over (partition by asset_id order by observed_at),
            'infinity'::timestamptz
        ) as valid_to,
        _loaded_at
    from delivered
    where is_new_state

)

select * from final
