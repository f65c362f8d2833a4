"""The tags nets writes on a run, in one place: the key, and what it says.

Readers (the report, ``--resume``, ``nets-cleanup``, ``nets-reproduce``, short ids,
``nets-diagnose``) find here what a run can carry; ``tests/test_vocabulary.py`` walks
every module and checks that each key read is written somewhere and that this table
lists every key written (so a key can neither be read that nothing writes, nor written
without a word on what it means). Metric keys are the engine's (``train/loss``,
``health/...``) and the job's summaries (``best/``, ``final/``, ``data/``).
"""

from __future__ import annotations

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
    "nets.resumes": "the parent run this --resume continues",
    "nets.resumes_sweep_id": "that parent's nets.sweep_id",
    "nets.dask_scheduler": "the dask scheduler's address",
    "nets.dask_workers": "the dask workers that ran jobs",
    # -- reproduction (nets.runs.reproduce) ------------------------------------------------
    "nets.reproduces": "the run id this run reproduces",
    "nets.reproduce.result": "identical | different",
    "nets.reproduce.first_difference": "the first metric, step and values that differed",
}
