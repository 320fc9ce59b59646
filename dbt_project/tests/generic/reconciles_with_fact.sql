{#-
    A rollup's totals equal its fact's, wherever the build changed them: no row of the fact
    lost, counted twice or put in the wrong bucket. `measures` maps each of the rollup's
    columns to the same total over the fact's rows:

        data_tests:
          - reconciles_with_fact:
              arguments:
                width: 1 hour
                measures: {requests: "count(*)", errors: "count(*) filter (where ...)"}
              config: {where: "{{ var('tested_rows') }}"}

    The fact is the one the rollup is built from (`tested_fact`), its time column its
    meta.fact.time_column. Two shapes of rollup:

    - bucketed (`width`): per `bucket`, the sum of each measure over the rollup's rows (one
      per combination of its dimensions) equals the fact's total over the bucket. Checked in
      the buckets the recent loads touched: those of the tested rows (`where`) and those
      holding the fact's rows that `var('tested_rows')` selects, so that a bucket the rollup
      missed is found too. Not the rollup's buckets older than the fact's oldest row: the
      rollup outlives its fact's retention, which drops whole days (partitions, chunks);
    - per period (`period: [start column, end column]`, with the columns `by` that the
      rollup and the fact share): each row's measure equals the fact's total over the rows
      of its `by` values in [start, end). Checked for the rows whose period holds fact rows
      that `var('tested_rows')` selects: the periods older than the fact's retention (which
      the rollup outlives) cannot reconcile.
-#}
{% test reconciles_with_fact(model, measures, width=none, period=none, by=[]) %}
{%- if not execute -%}
select 1 where false
{%- else -%}
{%- set fact = tested_fact() -%}
{%- set facts = relation_of(fact) -%}
{%- set time = fact.config.meta.fact.time_column -%}
{%- if (width is none) == (period is none) -%}
    {{ exceptions.raise_compiler_error(
        "reconciles_with_fact on " ~ model ~ ": give either width or period") }}
{%- endif -%}
{%- if width is not none %}
{%- set bucket = time_bucket(width, time) | trim %}
with

oldest as (

    select min({{ time }}) as {{ time }} from {{ facts }}

),

touched as (

    select bucket from {{ model }}
    where bucket >= (select {{ bucket }} from oldest)
    union
    select distinct {{ bucket }} from {{ facts }} where {{ var('tested_rows') }}

),

rollup_totals as (

    select
        bucket,
        {%- for measure in measures %}
        sum({{ measure }}) as {{ measure }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ relation_of(tested_model()) }}
    where bucket in (select bucket from touched)
    group by bucket

),

fact_totals as (

    select
        {{ bucket }} as bucket,
        {%- for measure, total in measures.items() %}
        {{ total }} as {{ measure }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ facts }}
    where {{ time }} >= (select min(bucket) from touched)
        and {{ bucket }} in (select bucket from touched)
    group by 1

),

final as (

    select
        coalesce(rollup_totals.bucket, fact_totals.bucket) as bucket,
        {%- for measure in measures %}
        rollup_totals.{{ measure }} as rollup_{{ measure }},
        fact_totals.{{ measure }} as fact_{{ measure }}{{ ',' if not loop.last }}
        {%- endfor %}
    from rollup_totals
    full join fact_totals on rollup_totals.bucket = fact_totals.bucket
    where
        {%- for measure in measures %}
        rollup_totals.{{ measure }} is distinct from fact_totals.{{ measure }}
        {{- ' or' if not loop.last }}
        {%- endfor %}

)

select * from final
{%- else %}
{%- set start, end = period %}
with

loaded as (

    select distinct {% for column in by %}{{ column }}, {% endfor %}{{ time }}
    from {{ facts }}
    where {{ var('tested_rows') }}

),

tested as (

    select * from {{ model }}

),

checked as (

    select * from tested
    where exists (
        select from loaded
        where loaded.{{ time }} >= tested.{{ start }} and loaded.{{ time }} < tested.{{ end }}
        {%- for column in by %}
            and loaded.{{ column }} = tested.{{ column }}
        {%- endfor %}
    )

),

periods as (

    select distinct {% for column in by %}{{ column }}, {% endfor %}{{ start }}, {{ end }}
    from checked

),

fact_totals as (

    select
        {%- for column in by %}
        periods.{{ column }},
        {%- endfor %}
        periods.{{ start }},
        {%- for measure, total in measures.items() %}
        {{ total }} as {{ measure }}{{ ',' if not loop.last }}
        {%- endfor %}
    from periods
    inner join {{ facts }} as facts
        on facts.{{ time }} >= periods.{{ start }} and facts.{{ time }} < periods.{{ end }}
        {%- for column in by %}
        and facts.{{ column }} = periods.{{ column }}
        {%- endfor %}
    group by {% for column in by %}periods.{{ column }}, {% endfor %}periods.{{ start }}

),

final as (

    select
        checked.*,
        {%- for measure in measures %}
        fact_totals.{{ measure }} as fact_{{ measure }}{{ ',' if not loop.last }}
        {%- endfor %}
    from checked
    left join fact_totals
        on fact_totals.{{ start }} = checked.{{ start }}
        {%- for column in by %}
        and fact_totals.{{ column }} = checked.{{ column }}
        {%- endfor %}
    where
        {%- for measure in measures %}
        checked.{{ measure }} is distinct from fact_totals.{{ measure }}
        {{- ' or' if not loop.last }}
        {%- endfor %}

)

select * from final
{%- endif %}
{%- endif %}
{% endtest %}
