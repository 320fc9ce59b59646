{#- Values of `column_name` within [min_value, max_value] (either bound may be left out;
    nulls pass: `not_null` says whether they may be there). dbt_utils' test of the same name,
    without the package (see unique_combination). -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}

{%- if min_value is none and max_value is none -%}
    {{ exceptions.raise_compiler_error(
        "accepted_range on " ~ column_name ~ " needs min_value, max_value or both") }}
{%- endif %}

select {{ column_name }}
from {{ model }}
where
    {%- if min_value is not none %}
    {{ column_name }} < {{ min_value }}
    {%- endif %}
    {%- if min_value is not none and max_value is not none %}
    or
    {%- endif %}
    {%- if max_value is not none %}
    {{ column_name }} > {{ max_value }}
    {%- endif %}

{% endtest %}
