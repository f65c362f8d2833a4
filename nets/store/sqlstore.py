"""Importing this module imports MLflow's SQLAlchemy store: 1.4 s of imports (its
mappers, alembic) that the first store a process opens would pay. Processes kept warm
(``nets.runs.warm``'s server, the sweep's fork server in ``nets.runs.workers``) import
it in advance, by name."""

from mlflow.store.tracking import sqlalchemy_store  # noqa: F401 - the import is the point
