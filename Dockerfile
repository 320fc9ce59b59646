# The hub's Airflow image: the official Airflow 3.3.2 image plus what `make setup` builds,
# from the same locks and with the same commands: the runtime dependencies
# (requirements.txt), the product package (analytics_hub, from include/ only), dbt in its
# own virtualenv (requirements-dbt.txt) and the dbt project with its compiled manifest.
# Used by docker-compose.yml for every Airflow component. tests/test_image.py rehearses it
# without Docker: it lays the files out as the instructions below do, then imports every
# DAG and renders a dbt task there, with compose's environment and mounts.
# Its `dev` stage adds the dev harness (dev/: the module simulators) for compose's
# simulators service; the product never imports it (tests/test_layering.py).
FROM apache/airflow:3.3.2-python3.11 AS product

USER root
RUN mkdir -p /opt/hub && chown airflow:0 /opt/hub
USER airflow

# The dbt the DAGs run and its project (analytics_hub.settings), set by the image that puts
# them there: every Airflow component finds them whoever runs the image.
ENV HUB_DBT_EXECUTABLE=/opt/hub/.venv-dbt/bin/dbt \
    HUB_DBT_PROJECT_DIR=/opt/airflow/dbt_project

# Dependencies first, so code changes do not invalidate this layer. requirements.txt pins
# apache-airflow==3.3.2 itself, which keeps pip from moving the image's Airflow.
COPY --chown=airflow:0 requirements.txt /opt/hub/requirements.txt
RUN pip install --no-cache-dir -r /opt/hub/requirements.txt

# dbt in its own virtualenv, made as scripts/bootstrap makes .venv-dbt (uv, the dbt lock,
# bytecode compiled at install), so dbt's pins stay out of Airflow's. The image's Python
# 3.11 is the one wanted: uv must not download another.
COPY --chown=airflow:0 requirements-dbt.txt /opt/hub/requirements-dbt.txt
RUN uv venv --quiet --python 3.11 --no-python-downloads /opt/hub/.venv-dbt \
    && uv pip sync --quiet --no-cache --compile-bytecode \
        --python /opt/hub/.venv-dbt/bin/python /opt/hub/requirements-dbt.txt

# The package, editable, so that compose can bind-mount ./include over it during development.
COPY --chown=airflow:0 pyproject.toml /opt/hub/pyproject.toml
COPY --chown=airflow:0 include /opt/hub/include
RUN pip install --no-cache-dir --no-deps -e /opt/hub

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins

# The dbt project and its manifest (target/, never the host's: .dockerignore), from which
# cosmos renders the transform DAG without running dbt at parse time. Parsed as
# scripts/bootstrap parses it, with the project's own profiles.yml, whose every value has a
# default: parsing connects to no database. Compose does not bind-mount ./dbt_project here:
# a mount would hide this target/ (the host's is git-ignored, absent from a fresh clone), so
# a changed model reaches the stack with `docker compose up --build`.
COPY --chown=airflow:0 dbt_project /opt/airflow/dbt_project
RUN DBT_SEND_ANONYMOUS_USAGE_STATS=false "$HUB_DBT_EXECUTABLE" parse --quiet --no-partial-parse \
        --project-dir "$HUB_DBT_PROJECT_DIR" --profiles-dir "$HUB_DBT_PROJECT_DIR"

# The simulators' image: the product's plus the dev harness (their dependencies, FastAPI
# and uvicorn among them, are already in requirements.txt through Airflow).
FROM product AS dev
COPY --chown=airflow:0 dev /opt/hub/dev
RUN pip install --no-cache-dir --no-deps -e /opt/hub/dev

# The default target (a plain `docker build .`) is the product.
FROM product
