"""Bad input and unreachable stores, through the real commands (issue 18).

Every case runs a console script as a subprocess in an empty directory of its own and
must end with exit code 2, exactly one line on stderr naming the problem, no traceback,
no terminal escape, and the directory still empty (no store, no Hydra output, no sweep
directory: nothing was run or recorded). A store that cannot be reached must be
reported within seconds (a hang is the failure: the bound below is generous).

The commands cost seconds of imports each, so the cases run two at a time in one
module fixture and the tests read their results. One real store (a first run, whose
terminal output must hold only nets' own lines) is shared by the cases that need one.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml


BIN = Path(sys.executable).parent
DROP_ENV = ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "MLFLOW_EXPERIMENT_NAME",
            "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "NETS_LOG_LEVEL", "MLFLOW_LOGGING_LEVEL")
HANG_BOUND = 30.0  # seconds; MLflow alone retried an absent server for 259 s
FAST = ["train.epochs=1", "dataset.subsample=100"]
SWEEP_HEAD = "defaults:\n  - config\n  - _self_\n"


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    env.update(extra)
    return env


def run(prog: str, args: list[str], cwd: Path, env: dict | None = None,
        timeout: float = 240) -> tuple[subprocess.CompletedProcess, float]:
    t = time.monotonic()
    p = subprocess.run([str(BIN / prog), *args], cwd=cwd, env=env or clean_env(),
                       capture_output=True, text=True, timeout=timeout)
    return p, time.monotonic() - t


def _child_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runs_in(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("select count(*) from runs").fetchone()[0]


# -- servers that are there but are not a working MLflow -----------------------------------

class _Answer503(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def servers():
    """``(port of a server answering 503, port of a socket that never answers)``."""
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Answer503)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes connections; nobody ever reads or answers
    yield httpd.server_address[1], silent.getsockname()[1]
    httpd.shutdown()
    silent.close()


# -- the shared store: a first run, which must print only nets' own lines ----------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    launch = tmp_path_factory.mktemp("store")
    # An empty cache of its own: MLflow builds this store (its migrations log at INFO).
    p, _ = run("nets-train", ["train.epochs=1", "dataset.subsample=200",
                              "tracking.progress=off", "tracking.log_plots=false"], launch,
               env=clean_env(NETS_CACHE_DIR=str(launch / "cache")))
    assert p.returncode == 0, p.stderr
    db = launch / "mlruns" / "mlflow.db"
    with sqlite3.connect(db) as con:
        run_id = con.execute("select run_uuid from runs").fetchone()[0]
    return {"launch": launch, "db": db, "run_id": run_id, "first_run": p}


def test_first_run_prints_only_nets_lines(store):
    """Item 7: no MLflow ``INFO ... Creating initial MLflow database tables`` or alembic
    lines on a first run; the one line left is nets' own."""
    p = store["first_run"]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines == [f"run {store['run_id']} FINISHED (completed)"], p.stderr
    assert "INFO" not in p.stderr and "alembic" not in p.stderr.lower()


def test_log_level_setting_shows_library_lines(tmp_path):
    """``NETS_LOG_LEVEL=INFO`` lets MLflow's lines through again (an empty cache: MLflow
    builds this store, no blank is copied)."""
    p, _ = run("nets-train", ["train.epochs=0", "dataset.subsample=100",
                              "tracking.progress=off", "tracking.log_plots=false",
                              "tracking.log_weights=false"], tmp_path,
               env=clean_env(NETS_LOG_LEVEL="INFO", NETS_CACHE_DIR=str(tmp_path / "cache")))
    assert p.returncode == 0, p.stderr
    assert "Creating initial MLflow database tables" in p.stderr


# -- the cases -----------------------------------------------------------------------------

def _inputs(root: Path, ports: tuple[int, int], store: dict) -> dict:
    """Files the cases point at, made once (outside every case's directory)."""
    d = root / "inputs"
    d.mkdir()
    (d / "regular").write_text("a regular file\n")
    (d / "garbage.db").write_text("this is not an sqlite database\n" * 40)
    (d / "long.csv").write_text("0,1,2\n1," + "z" * 5000 + ",3\n")
    sweeps = {
        "broken": SWEEP_HEAD + "hydra:\n  sweeper:\n    params:\n      seed: 0,1\n"
                               "train:\n  epochs: [1\n",
        "unknown_root": SWEEP_HEAD + "trian:\n  epochs: 1\n",
        "unknown_param": SWEEP_HEAD + "hydra:\n  sweeper:\n    params:\n"
                                      "      optimizer.lrr: 0.1,0.2\n",
        "unknown_nested": SWEEP_HEAD + "diagnostics:\n  probe_sise: 3\n",
        "bad_type": SWEEP_HEAD + "train:\n  epochs: abc\n",
        "not_mapping": "- config\n- seed\n",
        "progress_off": SWEEP_HEAD + "hydra:\n  sweeper:\n    params:\n      seed: 0,1\n"
                                     "tracking:\n  progress: off\ntrain:\n  epochs: 1\n",
    }
    for name, text in sweeps.items():
        (d / f"{name}.yaml").write_text(text)
    # A store copy whose run's config.yaml was edited to read /etc/passwd.
    tampered = root / "tampered"
    shutil.copytree(store["launch"] / "mlruns", tampered)
    cfg_path = next(tampered.glob(f"artifacts/*/{store['run_id']}/artifacts/config.yaml"))
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["dataset"] = {"name": "csv", "path": "/etc/passwd"}
    cfg_path.write_text(yaml.safe_dump(cfg))
    return {"dir": d, "refused": closed_port(), "p503": ports[0], "silent": ports[1],
            "tampered": tampered / "mlflow.db"}


def _cases(i: dict, store: dict) -> dict:
    """id -> (command, args, extra env, substrings the one line must hold, store case)."""
    d, http9 = i["dir"], f"http://127.0.0.1:{i['refused']}"
    long_value = "x" * 100_000
    return {
        # item 1: stores that cannot be opened, for every command that opens one
        "train_server_refused": ("nets-train", [f"tracking.uri={http9}", *FAST], {},
                                 [http9, "no MLflow server answers", "connection refused",
                                  "mlflow server --host 127.0.0.1"], True),
        "train_env_server_stopped": ("nets-train", FAST, {"MLFLOW_TRACKING_URI": http9},
                                     ["MLFLOW_TRACKING_URI", http9, "no MLflow server"], True),
        "train_server_silent": ("nets-train", [f"tracking.uri=http://127.0.0.1:{i['silent']}",
                                               *FAST], {}, ["does not answer within"], True),
        "train_server_503": ("nets-train", [f"tracking.uri=http://127.0.0.1:{i['p503']}",
                                            *FAST], {}, ["HTTP 503"], True),
        "train_uri_under_file": ("nets-train", [f"tracking.uri={d / 'regular'}/store", *FAST],
                                 {}, ["regular is a file", "choose another tracking.uri"], True),
        "train_uri_proc": ("nets-train", ["tracking.uri=/proc/nets-store", *FAST], {},
                           ["/proc/nets-store", "cannot create"], True),
        "train_uri_unknown_scheme": ("nets-train", ["tracking.uri=nosuch://x", *FAST], {},
                                     ["nosuch://x", "unknown tracking URI scheme",
                                      "sqlite:///"], True),
        "train_uri_not_sqlite": ("nets-train", [f"tracking.uri=sqlite:///{d / 'garbage.db'}",
                                                *FAST], {}, ["garbage.db",
                                                             "not an SQLite database"], True),
        "train_uri_postgres_refused": ("nets-train", [
            f"tracking.uri=postgresql://u:secret@127.0.0.1:{i['refused']}/db", *FAST], {},
            ["no database server answers", "u:***@"], True),
        "multirun_server_refused": ("nets-train", ["-m", "seed=0,1", f"tracking.uri={http9}",
                                                   *FAST], {}, [http9, "no MLflow server"], True),
        "sweep_server_refused": ("nets-sweep", ["example", f"tracking.uri={http9}"], {},
                                 [http9, "no MLflow server"], True),
        "report_server_refused": ("nets-report", ["--uri", http9], {},
                                  ["--uri", http9, "no MLflow server"], True),
        "reproduce_server_refused": ("nets-reproduce", ["0123abc", "--uri", http9], {},
                                     [http9, "no MLflow server"], True),
        "cleanup_server_refused": ("nets-cleanup", ["--uri", http9], {},
                                   [http9, "no MLflow server"], True),
        "ui_server_refused": ("nets-ui", ["--uri", http9], {}, [http9, "no MLflow server"],
                              True),
        "cleanup_not_sqlite": ("nets-cleanup", ["--uri", f"sqlite:///{d / 'garbage.db'}"], {},
                               ["not an SQLite database"], True),
        # item 3: sweep files, interpolations, a model that cannot fit
        "sweep_broken_yaml": ("nets-sweep", [str(d / "broken.yaml")], {},
                              ["broken.yaml", "broken YAML at line", "flow sequence"], False),
        "sweep_unknown_root_key": ("nets-sweep", [str(d / "unknown_root.yaml")], {},
                                   ["trian", "did you mean 'train'", "unknown_root.yaml"], False),
        "sweep_unknown_param": ("nets-sweep", [str(d / "unknown_param.yaml")], {},
                                ["optimizer.lrr", "did you mean 'lr'"], False),
        "sweep_unknown_nested_key": ("nets-sweep", [str(d / "unknown_nested.yaml")], {},
                                     ["diagnostics.probe_sise", "did you mean 'probe_size'",
                                      "unknown_nested.yaml"], False),
        "sweep_bad_type": ("nets-sweep", [str(d / "bad_type.yaml")], {},
                           ["train.epochs", "abc", "integer"], False),
        "sweep_not_mapping": ("nets-sweep", [str(d / "not_mapping.yaml")], {},
                              ["must be a YAML mapping"], False),
        "multirun_file_unknown_key": ("nets-train", ["-m", "--config-dir", str(d),
                                                     "--config-name", "unknown_root"], {},
                                      ["did you mean 'train'"], False),
        "interp_env_missing": ("nets-train", ["model.hidden=${oc.env:NETS_NO_SUCH_VAR}"], {},
                               ["model.hidden", "NETS_NO_SUCH_VAR is not set"], False),
        "interp_env_wrong_type": ("nets-train", ["optimizer.lr=${oc.env:HOME}"], {},
                                  ["optimizer.lr", "${oc.env:HOME}", "not a float"], False),
        "interp_key_missing": ("nets-train", ["optimizer.lr=${nosuch}"], {},
                               ["optimizer.lr", "'nosuch'", "not a config key"], False),
        "interp_unknown_resolver": ("nets-train", ["optimizer.lr=${foo:bar}"], {},
                                    ["no resolver 'foo'"], False),
        "model_too_big": ("nets-train", ["model.hidden=[10000000]"], {},
                          ["model.hidden", "GiB", "weights and gradients",
                           "train.max_memory_gb"], False),
        "memory_limit_setting": ("nets-train", ["train.max_memory_gb=0.00001"], {},
                                 ["the limit is train.max_memory_gb=1e-05", "MiB"], False),
        "memory_limit_negative": ("nets-train", ["train.max_memory_gb=-1"], {},
                                  ["train.max_memory_gb", "> 0"], False),
        "cnn_too_big": ("nets-train", ["model=cnn", "model.conv=[{channels: 100000}]"], {},
                        ["model='cnn'", "GiB"], False),
        # item 4: values that must be cut, quoted or escaped
        "value_100k_chars": ("nets-train", [f"model.activation={long_value}"], {},
                             ["(100000 characters)", "choose one of"], False),
        "non_ascii_unquoted": ("nets-train", ["model.activation=rélu"], {},
                               ["'é'", "U+00E9", "quote the value",
                                "model.activation='rélu'"], False),
        "control_character": ("nets-train", ["tracking.experiment=a\x1b[31mb"], {},
                              ["\\x1b", "U+001B", "quote the value"], False),
        "bidi_override": ("nets-train", ["tracking.experiment=a\u202eb"], {},
                          ["\\u202e", "quote the value"], False),
        "override_syntax": ("nets-train", ["optimizer.lr=[1,"], {},
                            ["optimizer.lr", "not a valid override"], False),
        # item 6: data files are never echoed
        "csv_is_etc_passwd": ("nets-train", ["dataset=csv", "dataset.path=/etc/passwd"], {},
                              ["/etc/passwd line", "not a ','-delimited file"], False),
        "csv_long_cell": ("nets-train", ["dataset=csv", f"dataset.path={d / 'long.csv'}"], {},
                          ["column 2", "(5000 characters)", "not a number"], False),
        "reproduce_tampered_config": ("nets-reproduce", [store["run_id"], "--uri",
                                                         f"sqlite:///{i['tampered']}"], {},
                                      ["/etc/passwd line", "refused"], False),
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory, servers, store):
    """Every case run once, two at a time: id -> (process, seconds, case dir, case)."""
    root = tmp_path_factory.mktemp("bad")
    inputs = _inputs(root, servers, store)
    cases = _cases(inputs, store)

    def one(item):
        name, (prog, args, env, _, _) = item
        cwd = root / "cases" / name
        cwd.mkdir(parents=True)
        p, seconds = run(prog, args, cwd, clean_env(**env))
        return name, (p, seconds, cwd)

    t, cpu = time.monotonic(), _child_cpu()
    # The store cases first: their bound is on wall-clock time, so they should not
    # queue behind the CPU-heavy ones.
    order = sorted(cases.items(), key=lambda kv: not kv[1][4])
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(pool.map(one, order))
    print(f"\n{len(cases)} bad-input cases in {time.monotonic() - t:.1f} s "
          f"({_child_cpu() - cpu:.1f} s of CPU)")
    return {name: (*done[name], cases[name]) for name in cases}, inputs


CASE_IDS = [
    "train_server_refused", "train_env_server_stopped", "train_server_silent",
    "train_server_503", "train_uri_under_file", "train_uri_proc", "train_uri_unknown_scheme",
    "train_uri_not_sqlite", "train_uri_postgres_refused", "multirun_server_refused",
    "sweep_server_refused", "report_server_refused", "reproduce_server_refused",
    "cleanup_server_refused", "ui_server_refused", "cleanup_not_sqlite", "sweep_broken_yaml",
    "sweep_unknown_root_key", "sweep_unknown_param", "sweep_unknown_nested_key",
    "sweep_bad_type", "sweep_not_mapping", "multirun_file_unknown_key", "interp_env_missing",
    "interp_env_wrong_type", "interp_key_missing", "interp_unknown_resolver", "model_too_big",
    "memory_limit_setting", "memory_limit_negative", "cnn_too_big", "value_100k_chars",
    "non_ascii_unquoted", "control_character", "bidi_override", "override_syntax",
    "csv_is_etc_passwd", "csv_long_cell", "reproduce_tampered_config",
]


def test_case_list_is_complete(results):
    assert sorted(CASE_IDS) == sorted(results[0])


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_input_is_one_line_exit_2_nothing_recorded(case, results):
    p, seconds, cwd, (prog, _, _, wanted, is_store) = results[0][case]
    assert p.returncode == 2, f"exit {p.returncode}\nstderr:\n{p.stderr[-3000:]}"
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr[-3000:]
    line = lines[0]
    assert line.startswith(f"{prog}: "), line
    for w in wanted:
        assert w in line, (w, line)
    out = p.stdout + p.stderr
    assert "Traceback" not in out
    assert "\x1b" not in out and "\u202e" not in out  # escaped, never sent raw
    assert len(line) < 1200, len(line)
    # No store and no sweep directory; a run refused while it is built (inside Hydra's
    # task function) leaves only Hydra's own outputs/ directory.
    assert [c.name for c in cwd.iterdir() if c.name != "outputs"] == []
    if is_store or prog != "nets-train":
        assert list(cwd.iterdir()) == []  # refused before Hydra made anything
    if is_store:
        assert seconds <= HANG_BOUND, f"{case} took {seconds:.1f} s"


def test_no_data_file_is_echoed(results):
    """Item 6: neither the CSV reader nor nets-reproduce quotes /etc/passwd."""
    passwd = [ln for ln in Path("/etc/passwd").read_text().splitlines() if ln.strip()]
    for case in ("csv_is_etc_passwd", "reproduce_tampered_config"):
        err = results[0][case][0].stderr
        assert not any(ln in err for ln in passwd), err
        assert "root:" not in err and "nologin" not in err
    long_line = results[0]["csv_long_cell"][0].stderr
    assert "z" * 100 not in long_line


def test_store_cases_leave_their_targets_alone(results, store):
    inputs = results[1]
    assert not (inputs["dir"] / "regular").is_dir()
    assert (inputs["dir"] / "garbage.db").read_text().startswith("this is not an sqlite")
    assert not Path("/proc/nets-store").exists()
    assert runs_in(inputs["tampered"]) == 1  # the refused rerun recorded nothing
    assert runs_in(store["db"]) == 1


def test_progress_off_in_yaml_means_off(tmp_path, results):
    """Item 4: ``tracking: {progress: off}`` (YAML's false) plans and would run quietly."""
    inputs = results[1]
    p, _ = run("nets-sweep", [str(inputs["dir"] / "progress_off.yaml"), "--dry-run"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "2 jobs" in p.stdout
    assert not (tmp_path / "mlruns").exists()
