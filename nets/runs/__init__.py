"""Running and recording: plain data in, MLflow records out.

``job`` trains and records one nets run; a sweep of any task runs through ``sweep``
(the orchestration: store, parent run, dispatch, janitor), ``workers`` (the worker
processes and what runs in them), ``records`` (what is written to the store),
``console`` (status line, summary), ``settings`` and ``cleanup`` (``nets-cleanup``);
``cluster`` dispatches to a dask.distributed cluster; ``reproduce`` reruns a recorded
run. Nothing here imports Hydra (``reproduce`` aside, for now): configs arrive as
plain data and task functions as picklable callables from ``hydra_plugins/nets_launcher``.
"""
