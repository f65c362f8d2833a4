"""The four stories' sweep files (``sweeps/story1.yaml`` ... ``story4.yaml``), smoke size.

Each test runs its sweep file through the real ``nets-sweep NAME`` path as a subprocess
(in its own temporary launch directory, so the store is ``<tmp>/mlruns/mlflow.db``), with
command-line overrides that shrink it (fewer epochs, fewer points), then reads the runs
back with ``MlflowClient`` and asserts the story's qualitative outcome: the pathology's
verdict appears on the broken configuration, and the fix the sweep reveals beats it.
The full-size figures are in the README section "Why is my accuracy stuck?".
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, clean_env

pytestmark = pytest.mark.slow  # the end-to-end tier: `pytest -m slow`


def sweep(tmp: Path, name: str, *overrides: str) -> dict[tuple, object]:
    """Run ``nets-sweep name overrides`` in ``tmp``; ``{swept values: child run}``."""
    env = clean_env()
    p = subprocess.run([str(BIN / "nets-sweep"), name, "tracking.progress=off", *overrides],
                       cwd=tmp, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    from mlflow.tracking import MlflowClient

    c = MlflowClient("sqlite:///" + str(tmp / "mlruns" / "mlflow.db"))
    exp = c.get_experiment_by_name("nets")
    runs = [r for r in c.search_runs([exp.experiment_id], max_results=1000)
            if r.data.tags.get("nets.sweep_role") == "job"]
    assert runs and all(r.info.status == "FINISHED" for r in runs), p.stdout
    return runs


def pick(runs, **params):
    """The one run whose params match (``a__b`` stands for ``a.b``)."""
    want = {k.replace("__", "."): str(v) for k, v in params.items()}
    got = [r for r in runs if all(r.data.params.get(k) == v for k, v in want.items())]
    assert len(got) == 1, (want, [r.data.params for r in runs])
    return got[0]


def verdicts(run) -> list[str]:
    return run.data.tags["nets.diagnosis"].split(",")


def test_story1_bold_driver_beats_a_constant_small_rate(tmp_path):
    # Full size: 300 full-batch epochs, lr 0.01/0.1/1 x constant/bold_driver.
    runs = sweep(tmp_path, "story1", "optimizer.lr=0.01,1", "train.epochs=60")
    assert len(runs) == 4
    slow = pick(runs, optimizer__lr=0.01, schedule__name="constant")
    assert "lr_too_low" in verdicts(slow), verdicts(slow)
    assert slow.data.metrics["best_val_accuracy"] < 0.2          # chance is 0.1
    const = pick(runs, optimizer__lr=1.0, schedule__name="constant")
    bold = pick(runs, optimizer__lr=1.0, schedule__name="bold_driver")
    acc = lambda r: r.data.metrics["best_val_accuracy"]
    assert acc(bold) > acc(const) + 0.1 and acc(bold) > acc(slow) + 0.3, (acc(bold), acc(const))
    assert bold.data.metrics["health/schedule/increase"] > 0       # the rate was raised
    assert bold.data.metrics["curves/lr"] > 1.0


def test_story2_tolerance_helps_learnable_data_and_nothing_helps_random(tmp_path):
    # Full size: tol 1..1e-3 x both sets x hidden 3/50, up to 10,000 epochs.
    runs = sweep(tmp_path, "story2", "train.tol=1,0.1", "model.hidden=[3]",
                 "train.epochs=4000")
    assert len(runs) == 4
    sse = lambda r: r.data.metrics["final_val_sse"]
    loose = pick(runs, dataset__name="tiny_regression", train__tol=1.0)
    tight = pick(runs, dataset__name="tiny_regression", train__tol=0.1)
    assert loose.data.tags["nets.outcome"] == tight.data.tags["nets.outcome"] == "converged"
    assert sse(tight) < sse(loose) / 5                            # about a decade per step
    assert tight.data.metrics["best_epoch"] > loose.data.metrics["best_epoch"]
    for tol in (1.0, 0.1):
        rand = pick(runs, dataset__name="random_regression", train__tol=tol)
        assert verdicts(rand) == ["nothing_learned"]
        base = rand.data.metrics["data_baseline_val_mae"]
        assert abs(rand.data.metrics["final_val_mae"] - base) < 0.25 * base


def test_story3_low_rate_loss_falls_while_accuracy_stays_and_a_larger_rate_learns(tmp_path):
    # Full size (the sweep as written, 15 epochs): lr 1e-4 / 1e-3 / 1e-2 -> 13.8% best,
    # 11.2% at the end / 54.2% / 97.7%. Here the two ends, at full size (~20 s).
    runs = sweep(tmp_path, "story3", "optimizer.lr=0.0001,0.01")
    assert len(runs) == 2
    low = pick(runs, optimizer__lr=0.0001)
    good = pick(runs, optimizer__lr=0.01)
    assert "loss_accuracy_divergence" in verdicts(low), verdicts(low)
    from mlflow.tracking import MlflowClient

    c = MlflowClient("sqlite:///" + str(tmp_path / "mlruns" / "mlflow.db"))
    loss = [p.value for p in sorted(c.get_metric_history(low.info.run_id, "curves/loss_val"),
                                    key=lambda p: p.step)]
    assert len(loss) == 16 and all(b < a for a, b in zip(loss, loss[1:]))  # falls every epoch
    m = low.data.metrics
    assert m["final_val_accuracy"] < 0.2 and m["health/pred/margin"] < 0  # chance is 1/13
    assert good.data.metrics["best_val_accuracy"] > 0.8
    assert good.data.metrics["health/pred/margin"] > 0


def test_story4_summed_gradients_collapse_and_mean_fixes_it(tmp_path):
    # Full size: the real MNIST test split (8,000/2,000) when given, reduction x lr x loss.
    # Here digits, lr 0.1, MSE only: the sum/mean pair.
    runs = sweep(tmp_path, "story4", "optimizer.lr=0.1", "experiment=story4", "train.epochs=3")
    assert len(runs) == 2
    summed = pick(runs, train__reduction="sum")
    mean = pick(runs, train__reduction="mean")
    assert {"class_collapse", "saturated_units"} <= set(verdicts(summed)), verdicts(summed)
    assert summed.data.metrics["health/pred/top_class_share"] >= 0.9
    assert summed.data.metrics["final_val_accuracy"] <= 0.15
    assert "class_collapse" not in verdicts(mean)
    assert mean.data.metrics["best_val_accuracy"] > summed.data.metrics["best_val_accuracy"] + 0.2


MNIST = Path(os.environ.get("NETS_MNIST_DIR", Path(__file__).parents[2] / "shared" / "data"
                            / "mnist"))


@pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="no MNIST test split (set NETS_MNIST_DIR)")
def test_story4_on_real_mnist_collapses_at_summed_gradients(tmp_path):
    runs = sweep(tmp_path, "story4", "optimizer.lr=0.1", "experiment=story4",
                 "train.reduction=sum", "train.epochs=2", "dataset=mnist",
                 f"dataset.path={MNIST}", "dataset.split=test", "dataset.download=false",
                 "dataset.subsample=3000")
    (run,) = runs
    assert "class_collapse" in verdicts(run), verdicts(run)
    assert run.data.metrics["final_val_accuracy"] <= 0.15
