"""One run's record: params once, batched metrics, tags, artifacts, the final status.

- Metrics go out synchronously, a batch per flush: points are buffered and flushed
  once at least ``flush_seconds`` have passed (so an epoch longer than that is written
  as soon as it ends, and a run of 5 ms epochs costs one transaction a second instead
  of one per epoch), and always before the run ends. Never MLflow's asynchronous
  logging: it lost points under lock contention while the run still ended FINISHED.
  On a local SQLite store the points go straight into MLflow's tables
  (``nets.store.sqlmetrics``: 15-26x less CPU than ``log_batch``); elsewhere ``log_batch``.
- Keys and values are sanitised here, once: int steps, finite floats. A NaN/inf metric
  is not written as 1.8e308: it is dropped and the run is tagged as diverged.
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

from mlflow.entities import Metric, Param, RunTag

from nets.store import sqlmetrics
from nets.store.client import MlflowClient, retry
from nets.store.keys import clean_key, finite, flatten  # noqa: F401 - re-exported
from nets.store.tags import logged_key

MAX_PARAM_LEN = 6000


class RunRecorder:
    """Writes one run: params once, a metric batch per epoch, tags, artifacts, status.

    Parameters
    ----------
    uri : str
        Absolute tracking URI (prepared by ``prepare_store`` in the launcher).
    experiment_id : str
    run_name : str
    tags : mapping
        Initial tags (config hash, versions, sweep ids ...).
    parent_run_id : str, optional
        Makes this a child run (``mlflow.parentRunId``).
    run_id : str, optional
        Write into this existing run (one a sweep launcher opened) instead of
        creating one; ``run_name``, ``tags`` and ``parent_run_id`` are then ignored.
    """

    def __init__(self, uri: str, experiment_id: str, run_name: str,
                 tags: Mapping[str, str] = (), parent_run_id: str | None = None,
                 flush_seconds: float = 1.0, run_id: str | None = None):
        self.client = MlflowClient(uri)
        self.uri = uri
        self.flush_seconds = flush_seconds
        self._buffer: list[Metric] = []
        self._tags: dict[str, str] = {}       # deferred to the next flush (``set_tags``)
        self._names: dict[str, str] = {}      # engine key -> the key MLflow stores
        self._last_flush = time.monotonic()
        self.dropped: list[tuple[str, int]] = []
        self.ended = False
        self._run = None
        if run_id is not None:
            self.run_id = run_id              # the run itself is read only if asked for
            return
        all_tags = {k: str(v) for k, v in dict(tags).items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        self._run = retry(self.client.create_run, experiment_id, run_name=run_name,
                          tags=all_tags)
        self.run_id = self._run.info.run_id

    @property
    def run(self):
        """The run as MLflow returned it when created (read from the store when this
        recorder writes into an existing run)."""
        if self._run is None:
            self._run = retry(self.client.get_run, self.run_id)
        return self._run

    # metrics ------------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Queue an epoch's metrics at integer ``step``; flush if the buffer is due.

        Keys are the engine's (``train/loss``); they are logged under
        ``nets.store.tags.logged_key`` (``curves/loss_train``), laid out for MLflow's UI.
        """
        now, step = int(time.time() * 1000), int(step)
        names = self._names
        for k, v in metrics.items():
            name = names.get(k)
            if name is None:   # a run logs the same few keys every epoch: map each once
                name = names[k] = clean_key(logged_key(k))
            fv = finite(v)
            if fv is None:
                self.dropped.append((logged_key(k), step))
                continue
            self._buffer.append(Metric(name, fv, now, step))
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def due(self, seconds: float) -> bool:
        """Whether anything is buffered and the last flush is ``seconds`` old."""
        return bool(self._buffer or self._tags) and \
            time.monotonic() - self._last_flush >= seconds

    def flush(self) -> None:
        """Write every buffered point and deferred tag in one batch (one transaction;
        the client splits batches over 1000 points)."""
        if self._buffer or self._tags:
            batch, self._buffer = self._buffer, []
            tags, self._tags = [RunTag(k, v) for k, v in self._tags.items()], {}
            fast = sqlmetrics.writer_for(self.uri) if batch else None
            if fast is not None:
                fast.log_metrics(self.run_id, batch)
                batch = []
            if batch or tags:
                retry(self.client.log_batch, self.run_id, metrics=batch, tags=tags)
        self._last_flush = time.monotonic()

    def log_summary(self, metrics: Mapping[str, Any]) -> None:
        """Single-value metrics (``best/…``, ``final/…``: logged ``best_…``) at step 0,
        written with the next flush (``end`` flushes): each separate batch of metrics
        is a transaction that also rewrites the run's latest values."""
        self.log_metrics(metrics, 0)

    # params and tags ------------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params once (MLflow params are immutable); the client chunks the batch.

        A value over MLflow's 6000-character limit is cut with a marker; the full
        config is always in the ``config.yaml`` artifact.
        """
        items = []
        for k, v in params.items():
            s = str(v)
            if len(s) > MAX_PARAM_LEN:
                s = s[:MAX_PARAM_LEN - 20] + "…(see config.yaml)"
            items.append(Param(clean_key(k), s))
        retry(self.client.log_batch, self.run_id, params=items)

    def set_tags(self, tags: Mapping[str, Any], defer: bool = False) -> None:
        """Set ``tags`` now, or with the next flush when ``defer`` (a job's tags go in
        the batch with its metrics; the caller flushes or ends the run soon after)."""
        items = {clean_key(k): str(v)[:8000] for k, v in tags.items()}
        if defer:
            self._tags.update(items)
        elif items:
            retry(self.client.log_batch, self.run_id,
                  tags=[RunTag(k, v) for k, v in items.items()])

    # artifacts ----------------------------------------------------------------------

    def log_text(self, text: str, path: str) -> None:
        retry(self.client.log_text, self.run_id, text, path)

    def log_file(self, local_path: str | os.PathLike, artifact_dir: str | None = None) -> None:
        retry(self.client.log_artifact, self.run_id, str(local_path), artifact_dir)

    def log_figure(self, fig, path: str) -> None:
        retry(self.client.log_figure, self.run_id, fig, path)

    # end ----------------------------------------------------------------------------

    def end(self, status: str = "FINISHED") -> None:
        """Terminate the run once with ``FINISHED``, ``FAILED`` or ``KILLED``."""
        if self.ended:
            return
        if self.dropped:
            first = self.dropped[0]
            self.set_tags({"nets.nonfinite_metrics": len(self.dropped),
                           "nets.first_nonfinite": f"{first[0]}@{first[1]}"}, defer=True)
        self.flush()
        retry(self.client.set_terminated, self.run_id, status)
        self.ended = True

