"""``nets-ui``: the MLflow UI on the store ``nets-train`` writes (same URI resolution)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from nets.store import uri as store_uri


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="nets-ui", description=__doc__)
    p.add_argument("--uri", help="tracking URI or store directory (default: $MLFLOW_TRACKING_URI, "
                   "else ./mlruns/mlflow.db)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--dry-run", action="store_true", help="print the command and exit")
    args, passthrough = p.parse_known_args(argv)
    uri = store_uri.resolve_uri(args.uri, os.getcwd())
    db = store_uri.sqlite_path(uri)
    if db is None or db.exists():
        from nets.store import connect

        try:
            connect.check(uri, connect.source_of(args.uri, "--uri"))
        except connect.StoreError as e:
            print(f"nets-ui: {e}", file=sys.stderr)
            sys.exit(2)
    if uri.startswith("http"):
        print(f"nets-ui: {uri} is a tracking server: open it in a browser", file=sys.stderr)
        return
    db = store_uri.sqlite_path(uri)
    if db is not None and not db.exists():
        print(f"nets-ui: no runs yet: {db} does not exist (run nets-train first)", file=sys.stderr)
        sys.exit(2)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", args.host, "--port", str(args.port), *passthrough]
    root = store_uri.artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    print(f"nets-ui: MLflow UI for {uri}\nnets-ui: open http://{args.host}:{args.port}", flush=True)
    if args.dry_run:
        print(" ".join(cmd))
        return
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    try:
        sys.exit(subprocess.call(cmd, env=env))
    except KeyboardInterrupt:
        pass
