"""Local services that the project's commands and tests start themselves.

No Docker engine is needed: PostgreSQL runs as a private cluster from the installed
server binaries (:mod:`.postgres`), S3 is moto's server mode (:mod:`.s3`), and
:mod:`.airflow_env` points a local Airflow at the private cluster.
"""

from analytics_hub.stack.net import free_port, project_root

__all__ = ["free_port", "project_root"]
