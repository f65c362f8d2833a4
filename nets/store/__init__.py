"""The MLflow record: the only package of nets that imports mlflow.

- ``uri``: where the store is (URI resolution, SQLite paths); imports nothing heavy.
- ``client``: opening and preparing a store, retries, versions.
- ``write``: one run's record (params, batched metrics, tags, artifacts, status).
- ``read``: searches, bulk histories and artifacts for the read-back commands
  (``curves``: metric histories in bulk; ``search``: a server's ``runs/search`` as JSON;
  ``sqlruns``: a SQLite file's runs by read-only SQL; ``rest``: the HTTP session).
- ``tags``: the one vocabulary of tag and metric keys nets writes and reads.

Modules are imported one by one (``from nets.store import uri``), never through this
``__init__``, so a command that only resolves a path never pays for ``import mlflow``.
"""
