"""The MLflow UI for a nets store, served in this process so it lands on the runs.

Why not ``mlflow ui`` in a child process:

- MLflow 3.17's UI decides between its GenAI pages and the runs table from the browser,
  not from the experiment: ``WorkflowTypeProvider``
  (``mlflow/server/js/src/common/contexts/WorkflowTypeContext.tsx``) takes the
  ``workflowType`` URL parameter, else the browser's local-storage entry
  ``mlflow.workflowType_v1``, else ``genai``; with workflow-based navigation on (always,
  in OSS 3.17: ``shouldEnableWorkflowBasedNavigation``) the ``mlflow.experimentKind`` tag
  is not read at all (``useExperimentKind`` in ``utils/ExperimentKindUtils.ts``). A user
  who opens the experiment from the list therefore lands on the GenAI overview. The index
  page served here first stores ``machine_learning`` in that entry when the browser has
  no choice of its own, so every way into an experiment ends on the runs table; the
  toggle in the UI still changes it.
- ``mlflow ui`` is three processes (CLI, uvicorn supervisor, worker): killing the
  parent left the server on the port. One process has nothing to leave behind.
"""

from __future__ import annotations

import os
import socket

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

WORKFLOW = "machine_learning"
# Browser entries (useLocalStorage in web-shared/hooks: key ``<key>_v<version>``, JSON
# value) set only where the browser has none, so a user's own choice always wins:
BROWSER_DEFAULTS = {
    # what WorkflowTypeProvider reads when the address has no workflowType
    "mlflow.workflowType_v1": f'"{WORKFLOW}"',
    # "already opened once": the assistant panel otherwise opens itself on first load,
    # over a third of the runs table
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
}
LAND_ON_RUNS = ("<script>try{" + "".join(
    f"if(localStorage.getItem({k!r})===null)localStorage.setItem({k!r},{v!r});"
    for k, v in BROWSER_DEFAULTS.items()) + "}catch(e){}</script>").encode()


def runs_address(base: str, experiment_id: str | None) -> str:
    """The runs table of ``experiment_id`` (the experiment list when ``None``)."""
    if experiment_id is None:
        return f"{base}/#/experiments?workflowType={WORKFLOW}"
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType={WORKFLOW}"


def experiment_id(uri: str, name: str) -> str | None:
    """Id of the active experiment ``name`` in the store at ``uri``, or ``None``."""
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(uri).get_experiment_by_name(name)
    return exp.experiment_id if exp is not None and exp.lifecycle_stage == "active" else None


def build_app(uri: str, artifact_root: str | None):
    """MLflow's ASGI app for ``uri`` whose index page sets the runs-table default."""
    from mlflow.server import constants

    os.environ[constants.BACKEND_STORE_URI_ENV_VAR] = uri
    os.environ[constants.REGISTRY_STORE_URI_ENV_VAR] = uri
    if artifact_root:
        os.environ[constants.ARTIFACT_ROOT_ENV_VAR] = artifact_root
    import warnings

    with warnings.catch_warnings():
        # starlette's WSGI bridge is deprecated; MLflow still uses it
        warnings.simplefilter("ignore")
        from flask import request
        from mlflow.server import app as flask_app
        from mlflow.server.fastapi_app import app
        from mlflow.server.handlers import initialize_backend_stores

    initialize_backend_stores(uri, uri, artifact_root)

    @flask_app.after_request
    def land_on_runs(resp):
        if request.path == "/" and resp.status_code == 200 and resp.mimetype == "text/html":
            resp.direct_passthrough = False
            resp.set_data(resp.get_data().replace(b"<head>", b"<head>" + LAND_ON_RUNS, 1))
        return resp

    return app


def serve(sock: socket.socket, uri: str, artifact_root: str | None, on_ready=None) -> None:
    """Serve the UI on the bound ``sock`` until SIGINT/SIGTERM.

    ``on_ready`` is called once the app is built (MLflow imported, store opened); until
    then the kernel queues the browser's connection on the listening socket instead of
    refusing it.
    """
    import uvicorn

    app = build_app(uri, artifact_root)
    if on_ready is not None:
        on_ready()
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3)
    uvicorn.Server(config).run(sockets=[sock])
