{{ config(materialized='table') }}
-- Budget burn per budget and calendar month (UTC): the account's spend in USD so far in
-- the month against the budget in force then, with an alert at the budget's threshold.
-- A plain table, rebuilt whole on every build: it joins the daily cost rollup to the
-- budgets (a continuous aggregate takes one hypertable and no joins), and it is small
-- (one row per budget and month).
with

daily_spend as (

    select * from {{ ref('agg_costs_daily') }}

),

budgets as (

    select * from {{ ref('stg_costops__budgets') }}

),

-- one row per state of a budget (a state landed again in a later window is the same state)
budget_states as (

    select distinct on (budget_id, updated_at)
        budget_id,
        account_id,
        period,
        limit_amount,
        currency,
        limit_usd,
        coalesce(alert_threshold_percent, 80) as alert_threshold_percent,
        updated_at
    from budgets
    order by budget_id, updated_at, _window_start desc

),

-- daily buckets start at midnight UTC, so each falls within one calendar month
monthly_spend as (

    select
        account_id,
        date_trunc('month', bucket at time zone 'UTC') as period_month,
        sum(cost_usd) as spend_usd,
        max(bucket) + interval '1 day' as spend_through
    from daily_spend
    group by 1, 2

),

-- the months that need a burn figure: those an account spent in, and those a budget was
-- set in
account_months as (

    select account_id, period_month from monthly_spend
    union
    select account_id, date_trunc('month', updated_at at time zone 'UTC') from budget_states

),

budget_months as (

    select distinct
        budget_states.budget_id,
        account_months.period_month
    from budget_states
    inner join account_months
        on budget_states.account_id = account_months.account_id
    where budget_states.period = 'monthly'

),

-- the budget in force for a month: its last state set before the month ended
budget_in_force as (

    select distinct on (budget_months.budget_id, budget_months.period_month)
        budget_months.period_month,
        budget_states.*
    from budget_months
    inner join budget_states
        on budget_months.budget_id = budget_states.budget_id
        and budget_states.updated_at < (budget_months.period_month + interval '1 month')
            at time zone 'UTC'
    order by budget_months.budget_id, budget_months.period_month, budget_states.updated_at desc

),

budget_spend as (

    select
        budget_in_force.*,
        coalesce(monthly_spend.spend_usd, 0) as spend_usd,
        monthly_spend.spend_through
    from budget_in_force
    left join monthly_spend
        on budget_in_force.account_id = monthly_spend.account_id
        and budget_in_force.period_month = monthly_spend.period_month

),

final as (

    select
        budget_id,
        account_id,
        period_month at time zone 'UTC' as period_start,
        (period_month + interval '1 month') at time zone 'UTC' as period_end,
        limit_amount,
        currency,
        limit_usd,
        alert_threshold_percent,
        updated_at as budget_updated_at,
        spend_usd,
        spend_through,
        limit_usd - spend_usd as remaining_usd,
        round(spend_usd * 100 / nullif(limit_usd, 0), 4) as burn_percent,
        -- exact: the rounded percent never decides an alert
        spend_usd * 100 >= alert_threshold_percent::numeric * limit_usd as is_alert,
        spend_usd > limit_usd as is_over_budget
    from budget_spend

)

select * from final
