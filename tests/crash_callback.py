"""TEST INSTRUMENTATION: a Hydra job callback that makes chosen jobs misbehave.

Put on the path (``PYTHONPATH=tests``) and selected with
``+hydra.callbacks.crash._target_=crash_callback.Crash``; ``NETS_TEST_CRASH="3:exit,5:raise"``
names the job numbers and how they fail (``raise``, ``unpicklable`` (an exception whose
class cannot be pickled), ``exit`` = ``os._exit(3)``, ``sigkill``, ``sys_exit``). It fires
inside the run, after the epoch-1 metrics are logged, so the run exists and would be
left RUNNING without the launcher. It lives in the tests, never in nets.
"""

from __future__ import annotations

import os
import signal
import sys

from hydra.experimental.callback import Callback

ENV = "NETS_TEST_CRASH"


class Crash(Callback):
    def on_job_start(self, config, **kwargs) -> None:
        wanted = dict(p.split(":", 1) for p in os.environ.get(ENV, "").split(",") if ":" in p)
        number = int(config.hydra.job.num)
        # Whatever records the job: a recorder process the worker keeps (nets' own job),
        # or a RunRecorder in the worker (imported only if something imported it).
        from nets.runs.writer import RecorderProcess

        classes = [RecorderProcess]
        if "nets.store.write" in sys.modules:
            classes.append(sys.modules["nets.store.write"].RunRecorder)
        for cls in classes:
            _patch(cls, number, wanted.get(str(number)))


def _patch(cls, number: int, mode: str | None) -> None:
    original = getattr(cls, "_uncrashed", None)
    if original is not None:  # a reused worker: undo an earlier job's patch
        cls.log_metrics = original
    if mode is None:
        return
    original = cls.log_metrics

    def crashing(self, metrics, step):
        original(self, metrics, step)
        if step >= 1:
            self.flush()
            if mode == "raise":
                raise RuntimeError(f"test crash in job {number}")
            if mode == "unpicklable":
                class Unpicklable(Exception):  # local class: pickle cannot find it
                    pass

                raise Unpicklable(f"test crash in job {number}")
            if mode == "exit":
                os._exit(3)
            if mode == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "sys_exit":
                sys.exit(2)

    cls._uncrashed = original
    cls.log_metrics = crashing
