"""``nets-train``'s first lines: start the recorder process, then everything else.

A short run's whole command was mostly waiting for imports: Hydra (~0.5 s), then
mlflow (~2-3 s) and matplotlib (~0.7 s) before the first number was written. The
recorder process (``nets.runs.writer``) takes the last two off the critical path, and
it only helps if it starts before this process spends its own second on Hydra: so this
module imports nothing heavy, starts it, and only then imports the app.

When a warm recorder (``nets.runs.warm``) answers, the recorder is forked from it with
everything imported; when none did, this run leaves one behind for the next.
"""

from __future__ import annotations

import sys

# Arguments after which nets-train records no single run here: nothing to start.
_SWEEP = ("-m", "--multirun")
_NOTHING_RECORDED = ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c",
                     "--shell-completion", "-sc", "tracking.enabled=false",
                     "tracking.enabled=False")
_NO_RUN = _SWEEP + _NOTHING_RECORDED

_WRITER = []


def take_writer():
    """The started recorder process, once (``None`` if none was started)."""
    return _WRITER.pop() if _WRITER else None


def _records_a_sweep(argv: list[str]) -> bool:
    """A tracked multirun that runs (no help, no dry run)."""
    return (bool(set(_SWEEP) & set(argv)) and not set(_NOTHING_RECORDED) & set(argv)
            and not any(a.lower() == "hydra.launcher.dry_run=true" for a in argv))


def train() -> None:
    """Console entry of ``nets-train``."""
    from nets.app import logs

    logs.quiet()  # before the child starts: it inherits the libraries' log levels
    argv = sys.argv[1:]
    cold = False
    if _records_a_sweep(argv):
        # A sweep's jobs record through the warm recorder: started now, its imports
        # overlap Hydra's composition of the sweep and the workers' start.
        from nets.runs import warm

        warm.start()
    elif not any(a in _NO_RUN or a.startswith("--shell-completion=") for a in argv):
        from nets.runs.writer import RecorderProcess

        try:
            _WRITER.append(RecorderProcess.spawn(warm=True))
            cold = not _WRITER[0].warm
            if logs.debug():
                print("nets-train: recorder: " + ("a new process (nothing warm answered)" if cold
                      else "forked by the warm recorder"), file=sys.stderr)
        except OSError:
            pass  # recorded in process instead, as a sweep's jobs are
    from nets.app.train import cli

    try:
        cli()
    finally:
        unused = take_writer()
        if unused is not None:  # rejected before a run began: stop its imports now
            unused.kill()
        elif cold:
            from nets.runs import warm

            warm.start()
