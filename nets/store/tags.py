"""The tags nets writes on a run, in one place: the key, and what it says.

Readers (the report, ``--resume``, ``nets-cleanup``, ``nets-reproduce``, short ids,
``nets-diagnose``) find here what a run can carry; ``tests/test_vocabulary.py`` walks
every module and checks that each key read is written somewhere and that this table
lists every key written (so a key can neither be read that nothing writes, nor written
without a word on what it means).

Metric keys have two spellings, both here: the engine's (``train/loss``, ``lr``,
``health/...``, and the job's summaries ``best/...``, ``final/...``, ``data/...``), which
the trainer, the diagnostics and the report use, and the one logged to MLflow
(``logged_key``), laid out for MLflow's UI. The UI (3.x, ``RunsChartsCardConfig.
getBaseChartAndSectionConfigs``) puts a metric in the section named by its key up to
the last ``/``, sorts those sections by name, and puts keys without a ``/`` last, in
"Model metrics". So the curves are logged under ``curves/`` (first, before ``health/``),
the rate as ``curves/lr`` (it sorts after ``curves/loss_val``), and the one-value
summaries without a ``/`` (``best_val_accuracy``: last on the charts tab, and a plain
``metrics.best_val_accuracy > 0.9`` in the runs table's search). ``nets_key`` reads
either spelling back, so records written before the rename still read.
"""

from __future__ import annotations

from typing import Any, Mapping

# The per-epoch curves a sweep report draws (the rate for adaptive schedules), in the
# engine's spelling: what a sweep job returns to its launcher for the parent's curves file.
SWEEP_CURVES = ("train/loss", "val/loss", "train/accuracy", "val/accuracy", "train/mae",
                "val/mae", "lr")

TAGS: dict[str, str] = {
    # -- every run nets records (nets.runs.job) -------------------------------------------
    "nets.config_hash": "hash of everything that sets the numbers (not tracking/diagnostics)",
    "nets.dataset": "the dataset's registry name",
    "nets.task": "classification | regression",
    "nets.host": "host that ran the job (nets-cleanup: is its process still alive?)",
    "nets.pid": "pid of the process that ran the job",
    "nets.outcome": "completed | converged | diverged | max_steps | early_stopping ...",
    "nets.reason": "why training stopped, in words",
    "nets.diverged": "true when the loss became non-finite or exploded",
    "nets.diagnosis": "verdict names, causes first: dead_units,class_collapse",
    "nets.diagnosis.by": "the nets version that set nets.diagnosis on a foreign run",
    "nets.error": "the first line of the error that ended the run FAILED/KILLED",
    "nets.blas": "the BLAS library numpy used (it can change float results)",
    "nets.blas_threads": "its thread count (nets-reproduce restores it)",
    "nets.git_dirty": "the nets checkout had uncommitted changes",
    "nets.version": "nets' version",
    "nets.user_code": "JSON list of the user's modules the run imported: module, file, sha256",
    "nets.usercheck": "the gradient check of the user's components: passed | failed",
    "nets.nonfinite_metrics": "count of NaN/inf metric points dropped (not written as 1e308)",
    "nets.first_nonfinite": "the first dropped point: key@step",
    "mlflow.note.content": "the diagnosis explained (the run's description in the UI)",
    "mlflow.source.git.commit": "commit of the nets checkout",
    "mlflow.version": "MLflow's version",
    # -- sweeps (nets.runs.sweep, nets.runs.records, nets.runs.cluster) --------------------
    "nets.sweep_id": "one id per launch of a sweep: parent and children",
    "nets.sweep_role": "parent | job",
    "nets.sweep_name": "the sweep file's (or the swept keys') name",
    "nets.sweep_key": "hash of the sweep's job configs: --resume finds the earlier parent",
    "nets.sweep_dir": "Hydra's multirun directory of the launch",
    "nets.sweep_status": "the parent's summary: FINISHED/FAILED/KILLED counts",
    "nets.job": "the job's number in the sweep",
    "nets.job_hash": "hash of the whole job config (--resume skips a FINISHED one)",
    "nets.attempt": "1, then 2 ... after a worker died and the job was retried",
    "nets.launcher": "nets | nets_dask",
    "nets.launcher_host": "host of the launching process",
    "nets.launcher_pid": "its pid (nets-cleanup: a RUNNING job whose launcher is gone)",
    "nets.n_jobs": "parallel workers",
    "nets.blas_threads_limit": "BLAS threads per worker",
    "nets.interrupted": "the sweep was stopped by Ctrl-C",
    "nets.runs_file_since": "ms: the parent's runs.json.gz holds its children as they were "
                            "then (nets-report reads it, and asks what changed since)",
    "nets.resumes": "the parent run this --resume continues",
    "nets.resumes_sweep_id": "that parent's nets.sweep_id",
    "nets.dask_scheduler": "the dask scheduler's address",
    "nets.dask_workers": "the dask workers that ran jobs",
    # -- reproduction (nets.runs.reproduce) ------------------------------------------------
    "nets.reproduces": "the run id this run reproduces",
    "nets.reproduce.result": "identical | different",
    "nets.reproduce.first_difference": "the first metric, step and values that differed",
}


# -- metric keys: the engine's name -> the name logged to MLflow ------------------------
# Per-epoch curves of a split: ``train/loss`` -> ``curves/loss_train`` (one section, the
# two splits of a quantity side by side); the rate: ``lr`` -> ``curves/lr``.
CURVE_SPLITS = ("train", "val")
CURVES_SECTION = "curves"
RATE = "lr"
# One-value summaries of a run: ``best/val_accuracy`` is logged as ``best_val_accuracy``.
SUMMARY_PREFIXES = ("best/", "final/", "data/")
_SUMMARY_LOGGED = tuple(p[:-1] + "_" for p in SUMMARY_PREFIXES)


def logged_key(key: str) -> str:
    """The name a metric is logged under: ``train/loss`` -> ``curves/loss_train``, ``lr``
    -> ``curves/lr``, ``best/val_accuracy`` -> ``best_val_accuracy``; others as they are."""
    if key == RATE:
        return f"{CURVES_SECTION}/{RATE}"
    split, sep, name = key.partition("/")
    if sep and split in CURVE_SPLITS and name and "/" not in name:
        return f"{CURVES_SECTION}/{name}_{split}"
    if key.startswith(SUMMARY_PREFIXES):
        return key.replace("/", "_", 1)
    return key


def nets_key(key: str) -> str:
    """The engine's name of a logged metric, from either spelling (records written
    before the rename logged the engine's names): the inverse of ``logged_key``."""
    section, sep, name = key.partition("/")
    if sep and section == CURVES_SECTION and "/" not in name:
        if name == RATE:
            return RATE
        quantity, _, split = name.rpartition("_")
        if quantity and split in CURVE_SPLITS:
            return f"{split}/{quantity}"
        return key
    if key.startswith(_SUMMARY_LOGGED) and "/" not in key:
        return key.replace("_", "/", 1)
    return key


def nets_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A run's ``{logged key: value}`` under the engine's names."""
    return {nets_key(k): v for k, v in metrics.items()}
