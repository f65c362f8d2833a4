"""``nets-diagnose RUN_ID ...``: nets' curve-based verdict for any MLflow run.

The run may come from nets, from a PyTorch or Keras script that logs to MLflow, or from
before nets existed. Its metric histories are read under nets' keys (``train/loss``,
``val/loss``, ``train/accuracy``, ``val/accuracy``, ``train/mae``, ``val/mae``, ``lr``),
through ``--key NETS_KEY=THEIR_KEY`` for other names (``--key val/accuracy=val_acc``),
and judged by ``nets.diagnostics.diagnose`` exactly as nets judges its own runs: the
static facts come from what the run recorded (``RunInfo.from_record``: nets' summary
metrics and tags when present), the default thresholds, and the health metrics
(``health/...``) when it logged them. Rules that need health metrics the
run does not have are named as skipped.

Prints the verdict with its evidence and sets the ``nets.diagnosis`` tag and the run's
description (``mlflow.note.content``); ``--no-tag`` only prints.

Exit codes: 0 diagnosed; 2 an unknown run, experiment or sweep, a bad ``--key``, or a
run without usable curves (one line ``nets-diagnose: error: ...``, nothing written).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping

from nets import diagnostics
from nets.diagnostics import RunInfo
from nets.store import tags as vocabulary

PROG = "nets-diagnose"
NETS_KEYS = ("train/loss", "val/loss", "train/accuracy", "val/accuracy", "train/mae",
             "val/mae", "lr")
LOSS_KEYS = ("train/loss", "val/loss")
# Rules that read health metrics, and the prefixes they need (a rule is skipped when
# the run logged none of its keys).
HEALTH_RULES = {"class_collapse": ("health/pred/",), "saturated_units": ("health/saturated/",),
                "dead_units": ("health/dead/",),
                "lr_too_low": ("health/update_ratio/", "health/grad_norm/")}


class UsageError(Exception):
    """One line for the user; exit 2."""


def parse_keys(pairs: list[str]) -> dict[str, str]:
    """``["val/accuracy=val_acc"]`` -> the full key map (nets' own names by default)."""
    keys = {k: k for k in NETS_KEYS}
    for pair in pairs:
        nets_key, sep, theirs = pair.partition("=")
        nets_key = vocabulary.nets_key(nets_key)   # the name MLflow shows (curves/loss_val) too
        if not sep or not theirs:
            raise UsageError(f"--key {pair!r} is not valid: write NETS_KEY=THEIR_KEY, e.g. "
                             "--key val/accuracy=val_acc")
        if nets_key not in NETS_KEYS:
            raise UsageError(f"--key {pair!r} is not valid: {nets_key!r} is not a key nets "
                             f"reads; choose one of: {', '.join(NETS_KEYS)}")
        keys[nets_key] = theirs
    return keys


def run_keys(run, keys: Mapping[str, str]) -> dict[str, str]:
    """``keys`` for one run: a nets key read under its own name is read under the name
    nets logs it as (``curves/loss_train``) when the run has that one instead (a run
    recorded before the metric rename has the engine's names)."""
    logged = run.data.metrics
    ours = {k: vocabulary.logged_key(k) for k in keys}
    return {k: ours[k] if v == k and k not in logged and ours[k] in logged else v
            for k, v in keys.items()}


def run_info(run, history: Mapping[str, list]) -> RunInfo:
    """``RunInfo`` from the record; the task guessed from the curves when no nets tag
    says it (accuracy: classification; MAE without accuracy: regression)."""
    tags = dict(run.data.tags)
    if "nets.task" not in tags:
        has_acc = any(k in history for k in ("val/accuracy", "train/accuracy"))
        has_mae = any(k in history for k in ("val/mae", "train/mae"))
        tags["nets.task"] = "regression" if has_mae and not has_acc else "classification"
    if "nets.outcome" not in tags:
        status = run.info.status
        tags["nets.outcome"] = "completed" if status in ("FINISHED", "RUNNING") else status.lower()
    return RunInfo.from_record(vocabulary.nets_metrics(run.data.metrics), tags, run.data.params)


def usable(history: Mapping[str, list]) -> bool:
    """A loss curve with at least two points: what every rule starts from."""
    return any(len(history.get(k, ())) >= 2 for k in LOSS_KEYS)


def skipped_rules(history: Mapping[str, list]) -> list[str]:
    return [rule for rule, prefixes in HEALTH_RULES.items()
            if not any(k.startswith(p) for k in history for p in prefixes)]


def no_curves(run, keys: Mapping[str, str]) -> str:
    keys = run_keys(run, keys)
    logged = sorted(run.data.metrics)
    lossy = [k for k in logged if "loss" in k.lower()]
    hint = (f"; map one with e.g. --key train/loss={lossy[0]}" if lossy else "")
    return (f"run {run.info.run_id} has no usable curves: neither "
            f"{keys['train/loss']!r} (train/loss) nor {keys['val/loss']!r} (val/loss) has two "
            f"or more points (its metrics: {', '.join(logged[:12]) or 'none'}"
            f"{', ...' if len(logged) > 12 else ''}){hint}")


def diagnose_run(client, history_mod, run, h: Mapping[str, list], keys: Mapping[str, str],
                 tag: bool, out=None) -> list:
    """Diagnose one run from its histories ``h``, print it, and (unless ``tag`` is
    false) write the verdict to it."""
    out = out or sys.stdout
    info = run_info(run, h)
    verdicts = diagnostics.diagnose(h, info)
    summary = diagnostics.summary(verdicts)
    skipped = skipped_rules(h)
    name = run.info.run_name or ""
    print(f"run {run.info.run_id}{f' ({name})' if name else ''}: {summary}", file=out)
    for v in verdicts:
        print(f"  {v.name}: {v.evidence}", file=out)
        print(f"    what to try: {v.advice}", file=out)
    mapped = {k: v for k, v in keys.items() if v not in (k, vocabulary.logged_key(k)) and k in h}
    if mapped:
        print("  read " + ", ".join(f"{v} as {k}" for k, v in mapped.items()), file=out)
    if skipped:
        print(f"  skipped (need health metrics this run did not log): {', '.join(skipped)}",
              file=out)
    if tag:
        note = diagnostics.explain(verdicts)
        if skipped:
            note += ("\n*Skipped* (need nets' health metrics, which this run did not log): "
                     + ", ".join(skipped) + "\n")
        note += "\n*Written by nets-diagnose from the run's metric curves.*\n"
        history_mod.set_diagnosis(client, run.info.run_id, {"nets.diagnosis": summary,
                                                            "mlflow.note.content": note,
                                                            "nets.diagnosis.by": PROG})
    return verdicts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog=PROG, description="nets' curve-based verdict for any MLflow run: prints it "
        "with its evidence and writes it to the run (tag nets.diagnosis and the "
        "description). Exit 2 with one line for an unknown run or a run without curves.")
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to diagnose")
    p.add_argument("--experiment", metavar="NAME", help="every run of this experiment")
    p.add_argument("--sweep", metavar="ID", help="every job run of this nets sweep")
    p.add_argument("--uri", help="tracking URI or store directory (default: "
                   "$MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    p.add_argument("--key", action="append", default=[], metavar="NETS_KEY=THEIR_KEY",
                   help="read another metric name as one of nets' (repeatable), e.g. "
                   "--key val/accuracy=val_acc --key train/loss=loss")
    p.add_argument("--no-tag", action="store_true", help="only print; write nothing")
    args = p.parse_args(argv)
    try:
        if not (args.run_ids or args.experiment or args.sweep):
            raise UsageError("name at least one RUN_ID, --experiment NAME or --sweep ID")
        keys = parse_keys(args.key)
        from nets.store import uri as store_uri

        try:
            uri = store_uri.existing_store(args.uri, os.getcwd())
        except FileNotFoundError as e:
            raise UsageError(str(e)) from None
        from nets.store import history

        client = history.open_client(uri)
        try:
            runs = history.get_runs(client, args.run_ids)
            if args.experiment:
                runs += history.experiment_runs(client, args.experiment)
            if args.sweep:
                runs += history.sweep_runs(client, args.sweep)
            found = [(r, history.histories(client, r, run_keys(r, keys))) for r in runs]
        except history.HistoryError as e:
            raise UsageError(str(e)) from None
        named = set(args.run_ids)
        bad = [r for r, h in found if not usable(h)]
        for r in bad:
            if r.info.run_id in named or len(bad) == len(found):
                raise UsageError(no_curves(r, keys))
        for r in bad:
            print(f"{PROG}: note: skipping {no_curves(r, keys)}", file=sys.stderr)
        if not found:
            raise UsageError(f"no runs in {'experiment ' + repr(args.experiment) if args.experiment else 'sweep ' + repr(args.sweep)}")
        for r, h in found:
            if r not in bad:
                diagnose_run(client, history, r, h, keys, not args.no_tag)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    return 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
