"""The hub's dev harness: what the commands and tests start themselves, never the product.

Installed for development and tests only (``dev/pyproject.toml``); the product
(``analytics_hub``, what the Airflow image installs) imports none of it, which
``tests/test_layering.py`` enforces. No Docker engine is needed: PostgreSQL runs as a
private cluster from the installed server binaries (:mod:`.postgres`), S3 is moto's server
mode (:mod:`.s3`), :mod:`.airflow_env` points a local Airflow at the private cluster,
:mod:`.dbt` runs dbt against a warehouse outside Airflow, and :mod:`.main_job`
(``make run``) and :mod:`.dbt_dev` (``make dbt-dev``) run the hub on them with the module
simulators (the ``simulators`` package beside this one).
"""
