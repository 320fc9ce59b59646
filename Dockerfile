# The hub's Airflow image: the official Airflow 3.3.2 image plus our locked runtime
# dependencies and the hub package (analytics_hub, simulators). Used by docker-compose.yml
# for every Airflow component and for the simulators.
FROM apache/airflow:3.3.2-python3.11

USER root
RUN mkdir -p /opt/hub && chown airflow:0 /opt/hub
USER airflow

# Dependencies first, so code changes do not invalidate this layer. requirements.txt pins
# apache-airflow==3.3.2 itself, which keeps pip from moving the image's Airflow.
COPY --chown=airflow:0 requirements.txt /opt/hub/requirements.txt
RUN pip install --no-cache-dir -r /opt/hub/requirements.txt

# The package, editable, so that compose can bind-mount ./include over it during development.
COPY --chown=airflow:0 pyproject.toml /opt/hub/pyproject.toml
COPY --chown=airflow:0 include /opt/hub/include
RUN pip install --no-cache-dir --no-deps -e /opt/hub

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 dbt_project /opt/airflow/dbt_project
