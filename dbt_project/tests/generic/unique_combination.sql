{#- No two rows share the same values of `columns` (dbt_utils' test, without the package:
    dbt packages come from hub.getdbt.com, which the hub's machines cannot reach). -#}
{% test unique_combination(model, columns) %}

select {{ columns | join(', ') }}, count(*) as duplicates
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
