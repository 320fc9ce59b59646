{#-
    The fact a tested rollup is built from, for `reconciles_with_fact`: the nearest models
    upstream of the tested model (`model.attached_node`) that declare `meta.fact`, of which
    there must be one. A rollup reads its fact directly
    (agg_costs_hourly: fct_cost_records), a rollup of a rollup through it
    (agg_budget_burn_monthly: agg_costs_daily, then fct_cost_records).

    Found in the graph, not passed as `ref()`: a test that refs two models runs in the
    builds of both, and in the fact's build (cosmos builds one model per task) the rollup
    has not taken the fact's new rows yet.
-#}
{% macro tested_fact() %}
    {%- set found = namespace(ids=[tested_model().unique_id], facts=[], seen=[]) -%}
    {%- for _ in range(10) if found.ids and not found.facts -%}
        {%- set parents = [] -%}
        {%- for unique_id in found.ids -%}
            {%- for parent in graph.nodes[unique_id].depends_on.nodes
                    if parent in graph.nodes and parent not in found.seen -%}
                {%- do found.seen.append(parent) -%}
                {%- do parents.append(parent) -%}
                {%- if (graph.nodes[parent].config.meta or {}).get('fact') -%}
                    {%- do found.facts.append(graph.nodes[parent]) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- set found.ids = parents -%}
    {%- endfor -%}
    {%- if found.facts | length != 1 -%}
        {{ exceptions.raise_compiler_error(
            model.attached_node ~ " must be built from exactly one fact model (meta.fact) to be"
            ~ " reconciled with it, not " ~ found.facts | map(attribute='name') | list) }}
    {%- endif -%}
    {{ return(found.facts[0]) }}
{% endmacro %}

{#- The tested model's node (a test's own `model` argument is the relation it reads). -#}
{% macro tested_model() %}
    {{ return(graph.nodes[model.attached_node]) }}
{% endmacro %}

{#- A model node's relation in the warehouse. -#}
{% macro relation_of(node) %}
    {{ return(api.Relation.create(
        database=node.database, schema=node.schema, identifier=node.alias)) }}
{% endmacro %}
