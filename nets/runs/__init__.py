"""Running and recording: plain data in, MLflow records out.

``job`` trains and records one run; ``sweep`` runs many in local worker processes,
``cluster`` on a dask.distributed cluster; ``reproduce`` reruns a recorded run. Nothing
here imports Hydra: configs arrive as plain dicts from ``nets.app``.
"""
