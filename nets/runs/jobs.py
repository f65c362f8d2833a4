"""What a sweep's driver tracks of each point (``Job``) and of each store it records
into (``Store``), and how it names and lists them on the parent run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from nets.runs import records


def sweep_run_name(name: str, configs: Iterable[Mapping[str, Any]], resumes: bool) -> str:
    """The parent's name: the sweep, its datasets and whether it resumes an earlier one,
    so two sweeps of one file (MNIST and digits; a run and its ``--resume``) differ in
    the runs table: ``sweep story4 (mnist)``, ``sweep example (digits, resume)``."""
    # Only nets' own configs name a dataset; another app's sweep is named by its file.
    datasets = sorted({(c["dataset"] if isinstance(c["dataset"], str)
                        else (c["dataset"] or {}).get("name", "?")) for c in configs
                       if isinstance(c, Mapping) and "dataset" in c})
    what = ", ".join(datasets[:3] + (["..."] if len(datasets) > 3 else [])
                     + (["resume"] if resumes else []))
    return f"sweep {name} ({what})" if what else f"sweep {name}"


@dataclass
class Job:
    """One point of the sweep, as the driver tracks it."""

    number: int
    overrides: list[str]
    config: dict                       # the job's resolved config, plain: params, hash
    fn: Callable | None = None         # worker side: fn(payload, guard) (workers.Task)
    payload: Any = None
    uri: str | None = None             # absolute; None = tracking disabled
    experiment: str | None = None      # experiment name
    log_path: str | None = None
    run_name: str | None = None
    experiment_id: str | None = None
    attempt: int = 0
    status: str = "PENDING"            # PENDING RUNNING FINISHED FAILED KILLED SKIPPED
    error: str | None = None
    run_id: str | None = None
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    diagnosis: str | None = None
    value: Any = None                  # what the worker-side fn returned
    curves: dict = field(default_factory=dict)   # nets' own job's, for the parent's file
    # Whether the task needs its run to be MLflow's active run in the worker (it logs
    # through MLflow itself); ``None``: unless ``fn`` says it records through the
    # recorder its worker hands it (``fn.nets_recorder``, nets' own job).
    fluent: bool | None = None

    @property
    def needs_fluent(self) -> bool:
        return self.fluent if self.fluent is not None else \
            not getattr(self.fn, "nets_recorder", False)

    @property
    def config_hash(self) -> str:
        return records.config_hash(self.config)

    def label(self, keys: Iterable[str] | None = None) -> str:
        """The overrides, or only those of ``keys`` (the swept ones)."""
        keys = set(keys or ())
        shown = [o for o in self.overrides if o.partition("=")[0].lstrip("+~") in keys] \
            if keys else self.overrides
        return " ".join(shown or self.overrides) or "(no overrides)"


@dataclass
class Store:
    uri: str
    experiment_id: str
    parent: Any = None                 # RunRecorder of the sweep's parent run
    previous_parent: str | None = None


def jobs_yaml(jobs: Sequence[Job]) -> str:
    import yaml

    return yaml.safe_dump([{"job": j.number, "overrides": list(j.overrides),
                            "config_hash": j.config_hash, "status": j.status,
                            "attempts": j.attempt, "run_id": j.run_id, "error": j.error}
                           for j in jobs], sort_keys=False)
