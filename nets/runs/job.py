"""One job: a resolved plain config in, a trained and recorded run out.

Shared by ``nets-train`` and the sweep launchers, so a run is recorded the same way
alone or in a sweep. Config arrives as plain data (no Hydra objects); the MLflow side
goes through ``nets.tracking``. The job owns its run's whole lifecycle: whatever
happens, the run ends FINISHED, FAILED (traceback attached) or KILLED, never RUNNING.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import yaml

from nets import diagnostics
from nets.runs import usercode
from nets.store.keys import finite, flatten
from nets.store.tags import SWEEP_CURVES, logged_key
from nets.train import Result, Run, build_run

# The sections a run config is split into at the border; only ``core`` decides the numbers.
SECTIONS = ("tracking", "diagnostics")


@dataclass
class Tracking:
    """The ``tracking`` section: where and how a run is recorded. The one schema:
    ``nets.app.schema`` registers this class for Hydra's type checks."""

    enabled: bool = True                 # false: train without recording anything
    uri: Optional[str] = None            # null: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db
    experiment: str = "nets"             # MLflow experiment name
    run_name: Optional[str] = None       # null: built from the settings (tanh-mse-sgd-lr0.1)
    log_weights: bool = True             # final weights as weights.npz
    log_plots: bool = True               # curves.png
    # curves.png of each sweep job as well: drawing it is most of a short job's
    # recording (~0.4 s), and the sweep report draws every run's curves anyway.
    sweep_plots: bool = False
    progress: str = "auto"               # auto | bar | lines | off


TRACKING_DEFAULTS = asdict(Tracking())


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Hash of everything that determines the numbers (``tracking`` and ``diagnostics``
    excluded: they change what is recorded, never the trained weights or curves; so is
    ``train.max_memory_gb``, a limit of the machine, which keeps old runs' hashes)."""
    core = {k: v for k, v in cfg.items() if k not in SECTIONS}
    if not core.get("plugins", True):
        # ``plugins: []`` (a launcher's dump of the composed config) is no plugins at all.
        core.pop("plugins")
    if isinstance(core.get("train"), Mapping) and "max_memory_gb" in core["train"]:
        core["train"] = {k: v for k, v in core["train"].items() if k != "max_memory_gb"}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _spec_name(spec: Any) -> str:
    return spec if isinstance(spec, str) else (spec or {}).get("name", "?")


DEFAULT_DATASET = "digits"  # left out of run names: most runs use it


def run_name(cfg: Mapping[str, Any]) -> str:
    """A readable name from the settings users vary most: ``tanh-mse-sgd-lr0.1``, led by
    the dataset unless it is the default (``mnist-relu-cross_entropy-sgd-lr0.1-sum``)."""
    model, opt = cfg.get("model", {}), cfg.get("optimizer", {})
    dataset = _spec_name(cfg.get("dataset", DEFAULT_DATASET))
    parts = [dataset] if dataset != DEFAULT_DATASET else []
    parts += [_spec_name(model.get("activation", model.get("name"))), _spec_name(cfg.get("loss")),
             _spec_name(opt), f"lr{opt.get('lr', '?'):g}" if isinstance(opt.get("lr"), (int, float))
             else "lr?"]
    sched = _spec_name(cfg.get("schedule", "constant"))
    if sched != "constant":
        parts.append(sched)
    if cfg.get("train", {}).get("reduction") == "sum":
        parts.append("sum")
    if cfg.get("seed", 0):
        parts.append(f"s{cfg['seed']}")
    return "-".join(str(p) for p in parts)


def git_state() -> dict[str, str]:
    """Commit and dirty flag of the nets source checkout, when it is one."""
    src = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return {}
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return {"mlflow.source.git.commit": commit.stdout.strip(),
                "nets.git_dirty": str(bool(dirty.stdout.strip())).lower()}
    except (OSError, subprocess.SubprocessError):
        return {}


def blas_state() -> dict[str, str]:
    """The BLAS library and its thread count (they can change float results)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return {}
    # Several BLAS copies can be loaded (scipy ships its own); numpy's is the one whose
    # matrix products the engine uses.
    mine = [i for i in blas if "numpy" in Path(i.get("filepath", "")).parent.as_posix()]
    b = (mine or blas)[0]
    return {"nets.blas": f"{b.get('internal_api')} {b.get('version')}",
            "nets.blas_threads": str(b.get("num_threads"))}


def summary(res: Result, run: Run) -> dict[str, float]:
    """``best/…``, ``final/…`` and baseline metrics, logged once at step 0."""
    h, data = res.history, run.data
    out: dict[str, float] = {"final/epochs": res.epochs, "final/steps": res.steps,
                             "data/val_is_train": float(data.X_val is data.X_train)}
    for k, v in h.items():
        if k != "lr" and v and not k.startswith("health/"):
            out[f"final/{k.replace('/', '_')}"] = v[-1]
    if data.task == "classification":
        acc = np.asarray(h["val/accuracy"])
        best = int(np.nanargmax(acc)) if np.isfinite(acc).any() else 0
        out.update({"best/val_accuracy": acc[best], "best/epoch": best})
        counts = np.bincount(np.asarray(data.y_val, dtype=np.int64), minlength=data.n_classes)
        out["data/chance_accuracy"] = 1.0 / data.n_classes
        out["data/majority_accuracy"] = counts.max() / max(1, counts.sum())
    else:
        loss = np.asarray(h["val/loss"])
        best = int(np.nanargmin(loss)) if np.isfinite(loss).any() else 0
        out.update({"best/val_loss": loss[best], "best/epoch": best})
        Yt = np.asarray(data.y_train, np.float64).reshape(len(data.y_train), -1)
        Yv = np.asarray(data.y_val, np.float64).reshape(len(data.y_val), -1)
        D = Yv - Yt.mean(axis=0)
        out["data/baseline_val_mae"] = float(np.mean(np.abs(D)))
        out["data/baseline_val_sse"] = float(np.sum(D * D))
    return out


class Progress:
    """Per-epoch progress: one rewritten line on a terminal, sparse plain lines otherwise.

    Every line it shows (and the final ones) is also kept for the ``console.log``
    artifact.
    """

    def __init__(self, mode: str, epochs: int, stream=None, prefix: str = ""):
        self.stream = stream or sys.stderr
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.mode = ("bar" if tty else "lines") if mode == "auto" else mode
        self.epochs, self.prefix, self.lines = max(epochs, 1), prefix, []
        self.every = max(1, self.epochs // 10)
        self.t0 = time.time()

    def _fmt(self, epoch: int, m: Mapping[str, float]) -> str:
        acc = m.get("val/accuracy", m.get("val/mae"))
        name = "val_acc" if "val/accuracy" in m else "val_mae"
        return (f"{self.prefix}epoch {epoch:>4}/{self.epochs}  loss {m.get('train/loss', float('nan')):.4g}"
                f"  {name} {acc:.4g}  lr {m.get('lr', float('nan')):.3g}  {time.time() - self.t0:.1f}s")

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> None:
        line = self._fmt(epoch, metrics)
        self.lines.append(line)
        if self.mode == "bar":
            width = 20
            done = int(width * epoch / self.epochs)
            print(f"\r[{'#' * done}{'.' * (width - done)}] {line}", end="", file=self.stream,
                  flush=True)
        elif self.mode == "lines" and (epoch % self.every == 0 or epoch == self.epochs):
            print(line, file=self.stream, flush=True)

    def say(self, text: str) -> None:
        if self.mode == "bar":
            print(file=self.stream)
            self.mode = "lines"
        self.lines.append(text)
        if self.mode != "off":
            print(text, file=self.stream, flush=True)


@dataclass
class JobSpec:
    """Everything a job needs, as plain picklable data (it may cross process boundaries).

    Attributes
    ----------
    config : dict
        The resolved config (with its ``tracking`` section).
    uri, experiment_id : str or None
        Prepared store (``None`` with tracking disabled).
    parent_run_id : str, optional
        The sweep's parent run.
    tags : dict
        Extra tags (sweep id, job number, attempt ...).
    overrides : list of str
        The command-line overrides that produced the config (artifact ``overrides.yaml``).
    run_id : str, optional
        An open run to record into: the child run a sweep launcher opened and owns (it
        logged the config as params, and it ends the run and records a failure).
    attached : bool
        The same, when that run is written by the recorder process handed to
        ``run_job`` (``nets.runs.workers.current_recorder``) and its id is not asked.
    """

    config: dict
    uri: str | None = None
    experiment_id: str | None = None
    parent_run_id: str | None = None
    tags: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)
    run_id: str | None = None        # record into this open run (a sweep launcher's)
    attached: bool = False           # or into the open run of ``recorder``


@dataclass
class JobStatus:
    """What comes back from a job: small and picklable, never an exception object."""

    status: str                      # FINISHED | FAILED | KILLED
    run_id: str | None = None
    outcome: str | None = None       # completed | converged | diverged | ...
    error: str | None = None         # one line
    diagnosis: str | None = None     # verdict names, e.g. "class_collapse,saturated_units"
    metrics: dict = field(default_factory=dict)
    # In a sweep: the report's curves as logged, ``{logged key: (steps, values)}`` (the
    # launcher keeps them on the parent run: ``nets.store.curves.SWEEP_FILE``).
    curves: dict = field(default_factory=dict)


PROGRESS = ("auto", "bar", "lines", "off")


def tracking_of(cfg: Mapping[str, Any]) -> dict:
    """The ``tracking`` section with defaults filled in, checked."""
    from nets.registry import ConfigError, check

    tr = dict(cfg.get("tracking") or {})
    unknown = sorted(set(tr) - set(TRACKING_DEFAULTS))
    if unknown:
        raise ConfigError(f"tracking.{unknown[0]}", tr[unknown[0]],
                          "unknown key; valid: " + ", ".join(TRACKING_DEFAULTS))
    tr = {**TRACKING_DEFAULTS, **tr}
    # YAML 1.1 reads a bare ``progress: off`` as false (and the str schema makes that
    # "False"): it means "off".
    if tr["progress"] is False or tr["progress"] in ("False", "false"):
        tr["progress"] = "off"
    check(tr["progress"] in PROGRESS, "tracking.progress", tr["progress"],
          f"choose one of: {', '.join(PROGRESS)}")
    return tr


@dataclass
class RunConfig:
    """A resolved plain config, split once at the border into its typed sections.

    Attributes
    ----------
    core : dict
        Everything that determines the numbers (model, data, optimizer, train, seed ...):
        what ``build_run`` gets, what ``config_hash`` hashes, what is logged as params.
    diagnostics : DiagnosticsSettings
    tracking : Tracking
    """

    core: dict
    diagnostics: Any
    tracking: Tracking

    @classmethod
    def of(cls, cfg: Mapping[str, Any]) -> "RunConfig":
        """Split and check (``ConfigError`` naming a bad ``tracking`` key or value)."""
        return cls({k: v for k, v in cfg.items() if k not in SECTIONS},
                   diagnostics.DiagnosticsSettings.from_config(cfg.get("diagnostics")),
                   Tracking(**tracking_of(cfg)))


def run_job(spec: JobSpec, stream=None, data=None, recorder=None) -> JobStatus:
    """Build, train and record one run (see module docstring).

    ``data``: the loaded dataset for this config's (dataset, seed), when the caller
    holds it already (a sweep's worker keeps the ones it loaded); ``None`` loads it.
    ``recorder``: a started ``nets.runs.writer.RecorderProcess`` to record through (the
    run is written beside the training by a process that imports mlflow meanwhile;
    ``spec.experiment_id`` may then be ``None``: it prepares the store itself).
    """
    cfg = spec.config
    rc = RunConfig.of(cfg)
    tr, core, dset = rc.tracking, rc.core, rc.diagnostics
    run = build_run(core, data=data)  # ConfigError here means nothing was recorded
    attached = spec.run_id is not None or spec.attached
    if attached and stream is None:
        from nets.runs.workers import current_log

        stream = current_log()
    progress = Progress(tr.progress, run.settings.epochs, stream=stream)
    rec = None
    if attached:
        tags = {"nets.config_hash": config_hash(cfg), "nets.dataset": run.data.name,
                "nets.task": run.data.task, **git_state(), **blas_state(), **spec.tags}
        if recorder is not None:   # it added the versions when it opened the run
            rec = recorder
            # The run exists before the first update (created while the job was built):
            # a worker that dies in training leaves a run for its launcher to end.
            rec.run_id  # noqa: B018
        else:
            from nets.store import client as store_client, write as store_write

            rec = store_write.RunRecorder(spec.uri, spec.experiment_id, "", run_id=spec.run_id)
            tags.update(store_client.versions())
        rec.set_tags(tags, defer=True)  # with the first metrics
    elif tr.enabled and recorder is not None:
        rec = recorder
        rec.open(spec.uri, tr.experiment, spec.experiment_id, tr.run_name or run_name(core),
                 {"nets.config_hash": config_hash(cfg), "nets.dataset": run.data.name,
                  "nets.task": run.data.task, "nets.host": socket.gethostname(),
                  "nets.pid": os.getpid(), **git_state(), **blas_state(), **spec.tags},
                 spec.parent_run_id)
    elif tr.enabled:
        from nets.store import client as store_client, write as store_write

        tags = {"nets.config_hash": config_hash(cfg), "nets.dataset": run.data.name,
                "nets.task": run.data.task, "nets.host": socket.gethostname(),
                "nets.pid": os.getpid(), **store_client.versions(), **git_state(), **blas_state(),
                **spec.tags}
        rec = store_write.RunRecorder(spec.uri, spec.experiment_id, tr.run_name or run_name(core),
                                   tags=tags, parent_run_id=spec.parent_run_id)
    try:
        if rec is not None and not attached:
            rec.log_params(flatten(core))
            rec.log_text(yaml.safe_dump(cfg, sort_keys=False), "config.yaml")
            rec.log_text(yaml.safe_dump(list(spec.overrides)), "overrides.yaml")
        kept: dict[str, dict[int, float]] = {k: {} for k in SWEEP_CURVES} if attached else {}

        def keep(epoch: int, metrics: Mapping[str, float]) -> None:
            for k, points in kept.items():   # what RunRecorder.log_metrics writes of them
                v = finite(metrics.get(k))
                if v is not None:
                    points[int(epoch)] = v

        callbacks = [progress] + ([lambda e, m: rec.log_metrics(m, e), keep] if rec else [])
        trainer = run.trainer()
        # The user's own components: source files recorded, gradients checked, before
        # the first update.
        usercode.check_and_record(run, core, dset, rec, progress.say)
        if dset.gradcheck:
            _gradcheck(trainer, dset, rec, progress)
        monitor = diagnostics.HealthMonitor(dset, warn=progress.say) if dset.enabled else None
        res = trainer.run(callbacks, [monitor] if monitor else [])
        progress.say(f"{res.outcome}: {res.reason}")
        verdicts = diagnostics.diagnose(res.history, diagnostics.RunInfo.from_run(run, res), dset)
        note = diagnostics.explain(verdicts, monitor.warnings if monitor else None)
        verdict = diagnostics.summary(verdicts)
        progress.say(f"diagnosis: {verdict}")
        for v in verdicts:
            progress.say(f"  {v.name}: {v.evidence}")
        summ = summary(res, run)
        if rec is not None:
            rec.log_summary(summ)
            rec.set_tags({"nets.outcome": res.outcome, "nets.reason": res.reason,
                          "nets.diverged": str(res.outcome == "diverged").lower(),
                          "nets.diagnosis": verdict, "mlflow.note.content": note},
                         defer=True)   # flushed with the summary, below
            # The tag is cut at 8000 characters; the artifact keeps the whole text.
            rec.log_text(note, "diagnosis.md")
            _log_artifacts(rec, run, res, tr, in_sweep=attached)
            rec.log_text("\n".join(progress.lines) + "\n", "console.log")
            if attached:
                rec.flush()
            else:
                rec.end("FINISHED")
        return JobStatus("FINISHED", rec.run_id if rec else None, res.outcome,
                         diagnosis=verdict, metrics={k: float(v) for k, v in summ.items()},
                         curves={logged_key(k): (list(p), list(p.values()))
                                 for k, p in kept.items() if p})
    except BaseException as exc:  # noqa: BLE001 - the run must end whatever happened
        if attached:  # the launcher records the failure, with this traceback
            with _quiet():
                rec.flush()
            raise
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        line = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        if rec is not None:
            with _quiet():
                rec.log_text(traceback.format_exc(), "error.txt")
                rec.set_tags({"nets.error": line[:500]})
                rec.log_text("\n".join(progress.lines) + "\n", "console.log")
            with _quiet():
                rec.end(status)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise JobFailed(line, rec.run_id if rec else None) from exc


def _gradcheck(trainer, dset, rec, progress) -> None:
    """Compare analytic and numerical gradients before the first update; raise if off."""
    try:
        errors = diagnostics.gradcheck_trainer(trainer, dset)
    except diagnostics.GradientCheckError as e:
        if rec is not None:
            rec.log_summary({f"gradcheck/{k}": v for k, v in e.errors.items() if math.isfinite(v)})
        raise
    if rec is not None:
        rec.log_summary({f"gradcheck/{k}": v for k, v in errors.items()})
    progress.say("gradient check passed: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))


class JobFailed(RuntimeError):
    """Training raised; the run (``run_id``) is already ended FAILED with its traceback."""

    def __init__(self, line: str, run_id: str | None):
        super().__init__(line)
        self.run_id = run_id


class _quiet:
    """Swallow errors while recording a failure (the original error matters more)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and not issubclass(exc[0], KeyboardInterrupt)


def _log_artifacts(rec, run: Run, res: Result, tr: Tracking, in_sweep: bool) -> None:
    if tr.log_weights:
        buf = io.BytesIO()
        np.savez(buf, **run.model.get_weights())
        with tempfile.TemporaryDirectory() as d:
            path = Path(d, "weights.npz")
            path.write_bytes(buf.getvalue())
            rec.log_file(path)
    if tr.log_plots and (tr.sweep_plots or not in_sweep):
        chance = 1.0 / run.data.n_classes if run.data.task == "classification" else None
        if hasattr(rec, "log_curves"):  # the recorder process draws it (matplotlib there)
            rec.log_curves(res.history, chance, rec.run_info_name)
            return
        from nets.report.plots import curves_figure

        rec.log_figure(curves_figure(res.history, chance=chance, title=rec.run.info.run_name),
                       "curves.png")


def sweep_task(config: dict, guard) -> JobStatus:
    """nets' own job as a sweep's worker-side callable, without Hydra (``Job.fn``;
    benchmarks and scripts): trains into the child run its worker opened."""

    def task(cfg: dict) -> JobStatus:
        spec, rec = in_sweep(cfg) or (JobSpec(cfg), None)   # None: tracking is off
        return run_job(spec, recorder=rec)

    return guard(task, config)


sweep_task.nets_recorder = True   # records through the recorder its worker hands it


def in_sweep(cfg: dict, overrides: list | None = None) -> tuple[JobSpec, Any] | None:
    """``(spec, recorder)`` for ``run_job`` inside a sweep job: the run the launcher's
    worker opened, through its recorder process or as MLflow's active run; ``None``
    outside a sweep job."""
    from nets.runs.workers import current_recorder

    job = current_recorder()
    if job is not None:
        record, rec = job
        return JobSpec(cfg, record.uri, record.experiment_id, attached=True,
                       overrides=list(overrides or [])), rec
    if "mlflow" not in sys.modules:  # a launcher that opened a run imported it: no run
        return None
    from nets.store import active

    run_id = active.active_run_id()
    if run_id is None:
        return None
    return JobSpec(cfg, os.environ.get("MLFLOW_TRACKING_URI"),
                   os.environ.get("MLFLOW_EXPERIMENT_ID"), run_id=run_id,
                   overrides=list(overrides or [])), None
