"""``nets-ui``: the MLflow UI on the store ``nets-train`` writes, opened on its runs table.

One process: it binds the port first (a busy port is one line and exit 2, before MLflow
is even imported), then serves MLflow's UI from ``nets.store.server``; stopping or
killing it frees the port.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys

from nets.store import uri as store_uri


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nets-ui", description=__doc__.split("\n\n")[0])
    p.add_argument("--uri", help="tracking URI or store directory (default: $MLFLOW_TRACKING_URI, "
                   "else ./mlruns/mlflow.db)")
    p.add_argument("--experiment", default="nets",
                   help="experiment whose runs the printed address opens (default: nets)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000,
                   help="port (default 5000; 0 = any free port, printed)")
    p.add_argument("--no-browser", action="store_true",
                   help="only print the address (the default opens it when a desktop is present)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the store and the address, serve nothing")
    return p


def _fail(line: str) -> None:
    print(f"nets-ui: {line}", file=sys.stderr)
    sys.exit(2)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; exit 2 with one line when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # SO_REUSEADDR only skips TIME_WAIT leftovers of a stopped server; a live listener
    # still makes bind fail on Linux and macOS.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            _fail(f"port {port} on {host} is in use (another nets-ui or server?): "
                  f"choose one with --port N, or --port 0 for any free port")
        _fail(f"cannot listen on {host}:{port}: {e.strerror}")
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def _has_desktop() -> bool:
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
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
        _fail(f"{uri} is a tracking server: open it in a browser")
    db = store_uri.sqlite_path(uri)
    if db is not None and not db.exists():
        _fail(f"no runs yet: {db} does not exist (run nets-train first)")
    if args.dry_run:
        print(f"nets-ui: MLflow UI for {uri}\nnets-ui: would serve http://{args.host}:{args.port}")
        return
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    base = f"http://{'[%s]' % host if ':' in host else host}:{port}"
    print(f"nets-ui: MLflow UI for {uri} on {base} (starting...)", flush=True)

    from nets.store import server

    def ready() -> None:
        address = server.runs_address(base, server.experiment_id(uri, args.experiment))
        print(f"nets-ui: open {address}\nnets-ui: Ctrl-C stops it", flush=True)
        if not args.no_browser and _has_desktop():
            import webbrowser

            webbrowser.open(address)

    try:
        server.serve(sock, uri, store_uri.artifact_root(uri), on_ready=ready)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
