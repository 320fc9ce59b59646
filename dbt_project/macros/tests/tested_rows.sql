{#-
    The rows a key test checks, named as the test's `where`:

        data_tests:
          - unique: {config: {where: tested_rows}}

    those of the tested model loaded within var('test_window') before its newest load. An
    hourly build thus tests the hour it brought, in time proportional to that hour: not to
    history, and not to a day of loads (which for a large deployment is 24 times the hour).
    `dbt test --vars '{test_window: 100 years}'` checks everything.

    (`tested_buckets`, below, is the same for the rollups.)

    A name, not Jinja: dbt renders a test's config when it parses the project, before
    anything can be read from the warehouse, and without the project's macros. So
    `get_where_subquery` (dbt's own, below, but for this name) writes the filter when the
    test runs: the newest load is read first and written as a literal, not as a subquery,
    so that the planner estimates the filter from its statistics and takes the `_loaded_at`
    indexes (as `new_rows` does for incremental models).
-#}
{% macro tested_rows(relation) %}
    {{ return("_loaded_at > " ~ newest(loads_of(model.attached_node, relation))
              ~ " - interval '" ~ var('test_window') ~ "'") }}
{% endmacro %}

{#- The relation whose `_loaded_at` a tested model's rows carry and which finds its newest by
    index: the model itself if it is a table; else (an ephemeral model is a CTE of the test's
    query, and PostgreSQL reads a staging view whole for its max) its nearest ancestor that
    is a table, a source included. -#}
{% macro loads_of(unique_id, relation) %}
    {%- set found = namespace(node=graph.nodes.get(unique_id)) -%}
    {%- for _ in range(10) if found.node is not none
                             and found.node.resource_type == 'model'
                             and found.node.config.materialized in ('ephemeral', 'view') -%}
        {%- set parents = found.node.depends_on.nodes
            | select('in', graph.nodes.keys() | list + graph.sources.keys() | list) | list -%}
        {%- set found.node = (graph.nodes.get(parents[0]) or graph.sources.get(parents[0]))
                             if parents else none -%}
    {%- endfor -%}
    {%- if found.node is none or found.node.unique_id == unique_id -%}
        {{ return(relation) }}
    {%- endif -%}
    {{ return(api.Relation.create(
        database=found.node.database, schema=found.node.schema,
        identifier=found.node.identifier if found.node.resource_type == 'source'
                   else found.node.alias)) }}
{% endmacro %}

{#-
    `where: tested_buckets`, for the rollups' key tests: the buckets from var('test_window')
    before the newest one (an hourly rollup's last two hours, a daily one's last day), which
    an hourly build rewrites; not all of history, which the rollups keep for a year. (Not
    for `not_null` on bucket: a filter on bucket would make it vacuous, and the bucket index
    answers it at once.)
-#}
{% macro tested_buckets(relation) %}
    {{ return("bucket >= " ~ newest(relation, 'bucket')
              ~ " - interval '" ~ var('test_window') ~ "'") }}
{% endmacro %}

{#- dbt's own, but for the two names above. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where == 'tested_rows' and execute -%}
        {%- set where = tested_rows(relation) -%}
    {%- elif where == 'tested_buckets' and execute -%}
        {%- set where = tested_buckets(relation) -%}
    {%- endif -%}
    {%- if where -%}
        {{ return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}
