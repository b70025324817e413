-- Run once by the postgres:15 image on an empty volume (infra/compose.yaml): Prefect gets the
-- database `prefect` (POSTGRES_DB), MLflow this one, both owned by the role `hill`.
CREATE DATABASE mlflow OWNER hill;
