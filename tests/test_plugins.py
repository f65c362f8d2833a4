"""The user's own components by import path: protocol, Hydra, the automatic gradient
check (story 1's and story 2's bugs as their authors wrote them), records, reproduction.

User modules are written into ``tmp_path`` and found from the launch directory, as a
user's ``mylayers.py`` next to their command would be. One end-to-end test runs the
real ``nets-train`` and ``nets-reproduce`` in subprocesses; the rest run in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from nets import plugins, usercheck
from nets.app import config as appconfig
from nets.app.reproduce import main as reproduce_main
from nets.catalog import build
from nets.registry import ConfigError
from nets.runs.job import JobFailed, JobSpec, run_job
from nets.store.client import prepare_store
from nets.train import build_run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "story1_layers"

# Every kind a user is most likely to write, in one module, one class per kind.
PARTS = '''
import numpy as np

from nets.data import Data
from nets.layers import Layer, Param
from nets.losses import Loss
from nets.optimizers import Optimizer
from nets.schedules import Decision, Schedule


class Softsign:
    """A = Z / (1 + |Z|); dZ = dA (1 - |A|)**2. A plain class: no nets base."""

    def forward(self, Z):
        return Z / (1.0 + np.abs(Z))

    def backward(self, dA, A):
        return dA * (1.0 - np.abs(A)) ** 2


class HalfSSE(Loss):
    """l_i = 0.5 sum_j (Y_ij - T_ij)**2."""

    def per_sample(self, Y, T):
        return 0.5 * np.sum((Y - T) ** 2, axis=1)

    def grad(self, Y, T, reduction="mean"):
        return (Y - T) / (len(Y) if reduction == "mean" else 1.0)


class Affine(Layer):
    """Z = X W + b."""

    def __init__(self, units: int = 4, scale: float = 0.5):
        self.units, self.scale = units, scale

    def build(self, in_shape, rng, dtype):
        self.W = Param("W", (self.scale * rng.standard_normal((in_shape[0], self.units))).astype(dtype), True)
        self.b = Param("b", np.zeros(self.units, dtype), False)
        self.params = [self.W, self.b]
        return (self.units,)

    def forward(self, X, training=False):
        self.X = X
        return X @ self.W.value + self.b.value

    def backward(self, dZ):
        self.W.grad[...] = self.X.T @ dZ
        self.b.grad[...] = dZ.sum(axis=0)
        return dZ @ self.W.value.T


class SignSGD(Optimizer):
    """W <- W - lr * sign(g)."""

    def update(self, params, lr):
        for p in params:
            p.value -= lr * np.sign(p.grad)


class Halving(Schedule):
    """lr_t = lr_0 / 2 ** floor(t / period)."""

    def __init__(self, every: str = "epoch", period: int = 2):
        super().__init__(every)
        self.period = period

    def update(self, t, loss=None, val_loss=None):
        self.lr = self.base_lr / 2 ** (t // self.period)
        return Decision(self.lr)


class TwoClouds:
    """Two Gaussian clouds in 2-D, labels 0 and 1. A plain class with load(rng)."""

    def __init__(self, n_samples: int = 60, gap: float = 2.0):
        self.n_samples, self.gap = n_samples, gap

    def load(self, rng):
        rng = np.random.default_rng(rng)
        y = np.arange(self.n_samples) % 2
        X = rng.standard_normal((self.n_samples, 2)) + self.gap * y[:, None]
        return Data(X[:40], y[:40], X[40:], y[40:], "classification", 2, None, "two_clouds")
'''

# Story 1's layers as its author wrote them (A = sigmoid(X W + b)): the example's fixed
# module, and the buggy one (output bias gradient times the bias; hidden delta without
# the sigmoid derivative).
STORY1 = (EXAMPLES / "fixed" / "mylayers.py").read_text()
STORY1_BUGGY = (EXAMPLES / "buggy" / "mylayers.py").read_text()

# Story 2: 3 sigmoid hidden units, identity output, the bias as a constant -1 input,
# weights U[0, 1), learning rate 10e-4 in the author's hand-written update.
STORY2 = '''
import numpy as np

from nets.layers import Layer, Param


class SigmoidLayer(Layer):
    """H = sigmoid(X W - b): the bias is a weight on a constant -1 input."""

    def __init__(self, units: int = 3):
        self.units = units

    def build(self, in_shape, rng, dtype):
        self.W = Param("W", rng.random((in_shape[0], self.units)).astype(dtype), True)
        self.b = Param("b", rng.random(self.units).astype(dtype), False)
        self.params = [self.W, self.b]
        return (self.units,)

    def forward(self, X, training=False):
        self.X = X
        self.H = 1.0 / (1.0 + np.exp(-(X @ self.W.value - self.b.value)))
        return self.H

    def backward(self, dH):
        delta = dH * self.H * (1.0 - self.H)
        self.W.grad[...] = self.X.T @ delta
        self.b.grad[...] = -delta.sum(axis=0)
        return delta @ self.W.value.T


class LinearLayer(SigmoidLayer):
    """Y = H V - c (identity output)."""

    def forward(self, X, training=False):
        self.X = X
        return X @ self.W.value - self.b.value

    def backward(self, dY):
        self.W.grad[...] = self.X.T @ dY
        self.b.grad[...] = -dY.sum(axis=0)
        weight_change = 10e-4 * self.W.grad
        return dY @ self.W.value.T
'''
STORY2_BUG = STORY2.replace("return dY @ self.W.value.T", "return dY @ weight_change.T")


@pytest.fixture
def userdir(tmp_path, monkeypatch):
    """``tmp_path`` as the launch directory; ``write(name, text)`` adds a module.
    Modules imported from it are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    written: list[str] = []

    def write(module: str, text: str) -> Path:
        plugins.forget(module)
        path = tmp_path / f"{module}.py"
        path.write_text(textwrap.dedent(text))
        written.append(module)
        return path

    yield write
    for m in written:
        plugins.forget(m)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """One SQLite store for the module: creating one costs seconds; tests keep to their
    own experiments."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def store(store_dir):
    uri = "sqlite:///" + str(store_dir / "mlflow.db")
    return uri, prepare_store(uri, "plugins")


def story_cfg(layers, dataset="digits", loss="mse", **train):
    return {"seed": 0, "dataset": {"name": dataset, **({"subsample": 200} if dataset == "digits" else {})},
            "model": {"name": "sequential", "layers": layers, "output": "identity"},
            "loss": loss, "target": "auto", "optimizer": {"name": "sgd", "lr": 0.5},
            "schedule": "constant",
            "train": {"epochs": 3, "batch_size": None, **train},
            "tracking": {"progress": "off", "log_plots": False, "log_weights": False}}


def story1_layers(hidden="mylayers:HiddenSigmoidDense", output="mylayers:SigmoidDense"):
    """Story 1's 64-30-10 sigmoid network; a built-in may stand in for either layer."""
    first = ([{"name": "dense", "units": 30}, {"name": "activation", "fn": "sigmoid"}]
             if hidden == "dense" else [{"name": hidden, "units": 30}])
    last = ([{"name": "dense", "units": 10}, {"name": "activation", "fn": "sigmoid"}]
            if output == "dense" else [{"name": output, "units": 10}])
    return first + last


def story2_layers():
    return [{"name": "mynet:SigmoidLayer", "units": 3}, {"name": "mynet:LinearLayer", "units": 4}]


# -- the automatic check catches the stories' bugs, names the parameter, trains nothing ----

@pytest.mark.parametrize("module,text,layers,dataset,loss,expect", [
    ("mylayers", STORY1_BUGGY, story1_layers(hidden="dense"), "digits", "mse",
     "gradient check failed: mylayers:SigmoidDense parameter b: relative error"),
    ("mylayers", STORY1_BUGGY, story1_layers(output="dense"), "digits", "mse",
     "gradient check failed: mylayers:HiddenSigmoidDense parameter W: relative error"),
    ("mynet", STORY2_BUG, story2_layers(), "tiny_regression", "sse",
     "gradient check failed: mynet:LinearLayer input gradient dX: relative error"),
], ids=["story1-bias-times-bias", "story1-no-sigmoid-derivative", "story2-weight-change"])
def test_story_bugs_stop_the_run_before_it_trains(userdir, store, module, text, layers,
                                                  dataset, loss, expect):
    uri, exp = store
    userdir(module, text)
    with pytest.raises(JobFailed) as err:
        run_job(JobSpec(story_cfg(layers, dataset, loss), uri, exp))
    line = str(err.value)
    assert "\n" not in line and expect in line and "(threshold 1e-4)" in line
    error = float(line.split("relative error ")[1].split(" ")[0])
    assert error > 0.1
    client = MlflowClient(uri)
    run = client.get_run(err.value.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["nets.usercheck"] == "failed"
    assert "curves/loss_train" not in run.data.metrics        # not even epoch 0 was evaluated
    table = Path(client.download_artifacts(run.info.run_id, "usercheck.md", str(Path.cwd())))
    assert "| FAIL |" in table.read_text()
    assert module + ".py" in [Path(f.path).name for f in
                              client.list_artifacts(run.info.run_id, "user_code")]


@pytest.mark.parametrize("module,text,layers,dataset,loss", [
    ("mylayers", STORY1, story1_layers(), "digits", "mse"),
    ("mynet", STORY2, story2_layers(), "tiny_regression", "sse"),
], ids=["story1", "story2"])
def test_fixed_versions_pass_and_train(userdir, store, module, text, layers, dataset, loss):
    uri, exp = store
    userdir(module, text)
    lines = []
    status = run_job(JobSpec(story_cfg(layers, dataset, loss, epochs=20), uri, exp))
    assert status.status == "FINISHED"
    run = MlflowClient(uri).get_run(status.run_id)
    assert run.data.tags["nets.usercheck"] == "passed"
    worst = max(v for k, v in run.data.metrics.items() if k.startswith("usercheck/"))
    assert worst < 1e-6
    hist = [m.value for m in MlflowClient(uri).get_metric_history(status.run_id, "curves/loss_train")]
    assert len(hist) == 21 and hist[-1] < hist[0]
    del lines


def test_check_can_be_turned_off(userdir, store):
    uri, exp = store
    userdir("mylayers", STORY1_BUGGY)
    cfg = story_cfg(story1_layers())
    cfg["diagnostics"] = {"gradcheck_user": False}
    assert run_job(JobSpec(cfg, uri, exp)).status == "FINISHED"


def test_user_activation_and_loss_are_checked_too(userdir):
    userdir("myparts", PARTS.replace("return dA * (1.0 - np.abs(A)) ** 2", "return dA")
            .replace("return (Y - T) / (len(Y)", "return (Y - T) * 2 / (len(Y)"))
    run = build_run({"dataset": {"name": "xor", "n_samples": 40},
                     "model": {"name": "mlp", "hidden": [5], "activation": "myparts:Softsign",
                               "output": "sigmoid"},
                     "loss": "myparts:HalfSSE", "target": "one_hot", "train": {"epochs": 1}})
    with pytest.raises(usercheck.ComponentCheckError) as err:
        usercheck.check_run(run)
    parts = {(r.component, r.part): r.passed(1e-4) for r in err.value.results}
    assert parts == {("myparts:Softsign", "input"): False, ("myparts:HalfSSE", "input"): False}


# -- every kind by import path, through nets-train and nets-reproduce -----------------------

def cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_every_kind_trains_records_and_reproduces(userdir, tmp_path, capsys, store, store_dir):
    src = userdir("myparts", PARTS)
    store = store_dir
    overrides = [
        "dataset=myparts:TwoClouds", "dataset.n_samples=60",
        "model=sequential",
        'model.layers=[{name: "myparts:Affine", units: 6}, {name: activation, fn: "myparts:Softsign"},'
        ' {name: "myparts:Affine", units: 2}]',
        "model.output=sigmoid", "loss=myparts:HalfSSE", "target=one_hot",
        "optimizer=myparts:SignSGD", "optimizer.lr=0.05", "schedule=myparts:Halving",
        "schedule.period=2", "train.epochs=5", "train.batch_size=null",
        f"tracking.uri={store}", "tracking.log_plots=false", "tracking.progress=off",
        "tracking.experiment=every-kind"]
    p = cli("nets-train", *overrides, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    uri = "sqlite:///" + str(store / "mlflow.db")
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("every-kind").experiment_id])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["dataset.name"] == "myparts:TwoClouds" and params["dataset.gap"] == "2.0"
    assert params["optimizer.name"] == "myparts:SignSGD" and params["schedule.period"] == "2"
    assert params["loss.name"] == "myparts:HalfSSE"
    assert "myparts:Affine" in params["model.layers"]
    assert run.data.tags["nets.dataset"] == "two_clouds"
    [code] = yaml.safe_load(run.data.tags["nets.user_code"])
    assert code["module"] == "myparts" and code["sha256"] == plugins.file_hash(src)
    assert run.data.tags["nets.usercheck"] == "passed"
    lr = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "curves/lr"),
                                  key=lambda m: m.step)]
    assert lr == [0.05, 0.05, 0.05, 0.025, 0.025, 0.0125]      # the user's schedule
    loss = client.get_metric_history(run.info.run_id, "curves/loss_train")
    assert len(loss) == 6

    # nets-reproduce in-process (the same main() as the console script), from the
    # launch directory: the module is imported from there again.
    assert reproduce_main([run.info.run_id, "--uri", str(store)]) == 0
    assert capsys.readouterr().out.startswith("identical:")

    src.write_text(src.read_text() + "\n# tuned the gap\n")
    assert reproduce_main([run.info.run_id, "--uri", str(store)]) == 2
    out, err = capsys.readouterr()
    [line] = err.strip().splitlines()
    assert out == "" and "user module 'myparts'" in line and "has changed since the run" in line
    assert f"mlflow artifacts download -r {run.info.run_id} -a user_code" in line

    src.unlink()
    assert reproduce_main([run.info.run_id, "--uri", str(store)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "user module 'myparts' (myparts.py) cannot be found" in line
    assert len(client.search_runs([run.info.experiment_id])) == 2   # one rerun, no refused ones


# -- Hydra: composition, strict keys, plugins lists -------------------------------------------

def compose_plain(overrides):
    appconfig.check_overrides(overrides)
    with initialize_config_dir(str(appconfig.CONF_DIR), version_base="1.3"):
        return appconfig.to_plain(compose("config", overrides=overrides))


def test_constructor_arguments_become_config_keys(userdir):
    userdir("myparts", PARTS)
    plain = compose_plain(["optimizer=myparts:SignSGD", "optimizer.lr=0.2",
                           "schedule=myparts:Halving", "schedule.period=3"])
    assert plain["optimizer"] == {"name": "myparts:SignSGD", "lr": 0.2, "weight_decay": 0.0}
    assert plain["schedule"] == {"name": "myparts:Halving", "every": "epoch", "period": 3}
    assert "plugins" not in plain     # runs without plugins hash as before
    with pytest.raises(ConfigError, match=r"optimizer.lrr='0.2' is not valid: unknown key of "
                                          r"optimizer.*did you mean 'lr'"):
        compose_plain(["optimizer=myparts:SignSGD", "optimizer.lrr=0.2"])
    with pytest.raises(ConfigError, match="has no attribute 'Lion'"):
        compose_plain(["optimizer=myparts:Lion"])


def test_plugins_list_registers_short_names(userdir):
    userdir("myreg", '''
        import numpy as np
        from nets.optimizers import OPTIMIZERS, Optimizer

        @OPTIMIZERS.register("sign_sgd_test")
        class SignSGD(Optimizer):
            def __init__(self, lr: float = 0.01, weight_decay: float = 0.0, scale: float = 1.0):
                super().__init__(lr, weight_decay)
                self.scale = scale

            def update(self, params, lr):
                for p in params:
                    p.value -= lr * self.scale * np.sign(p.grad)
        ''')
    plain = compose_plain(["plugins=[myreg]", "optimizer=sign_sgd_test", "optimizer.scale=2"])
    assert plain["plugins"] == ["myreg"]
    assert plain["optimizer"]["name"] == "sign_sgd_test" and plain["optimizer"]["scale"] == 2.0
    run = build_run({k: v for k, v in plain.items() if k != "tracking"}
                    | {"dataset": {"name": "xor", "n_samples": 40}})
    assert type(run.optimizer).__name__ == "SignSGD"
    assert [s.module for s in plugins.sources()].count("myreg") == 1


# -- one line for a class that does not follow the protocol ---------------------------------

@pytest.mark.parametrize("kind,text,expect", [
    ("activation", "class A:\n    def forward(self, Z):\n        return Z\n",
     "A does not follow the activation protocol: method backward(dA, A) is missing"),
    ("layer", "from nets.layers import Layer\nclass A(Layer):\n    def forward(self, X, training=False):\n"
              "        return X\n",
     "A does not follow the layer protocol: method backward(dY) is missing"),
    ("loss", "class A:\n    def per_sample(self, Y, T):\n        return Y\n"
             "    def grad(self, Y):\n        return Y\n",
     "A.grad must accept (Y, T, reduction); it is grad(Y)"),
    ("optimizer", "class A:\n    pass\n", "method update(params, lr) is missing"),
    ("dataset", "class A:\n    pass\n", "method load(rng) is missing"),
    ("schedule", "class A:\n    def update(self, t, loss=None, val_loss=None):\n        return None\n"
                 "    def __init__(self, every='epoch', factor=2):\n        self.every = every\n",
     "A.__init__ argument 'factor' is not kept as self.factor"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 12 else None)
def test_protocol_errors_are_one_line(userdir, kind, text, expect):
    userdir("badparts", text)
    with pytest.raises(ConfigError) as err:
        build(kind, {"name": "badparts:A"}, key=kind)
    assert expect in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"{kind}.name='badparts:A' is not valid") or \
        str(err.value).startswith(f"{kind}='badparts:A' is not valid")


def test_import_errors_are_one_line(userdir):
    with pytest.raises(ConfigError, match=r"cannot import module 'nosuchmod': "
                                          r"ModuleNotFoundError: No module named 'nosuchmod'"):
        build("layer", "nosuchmod:Dense")
    userdir("broken", "import numpy as np\nraise ValueError('half-written')\n")
    with pytest.raises(ConfigError, match=r"importing module 'broken' failed: ValueError: "
                                          r"half-written"):
        build("layer", "broken:Dense")


def test_hparams_round_trip_and_names_stay_short(userdir):
    userdir("myparts", PARTS)
    layer = build("layer", {"name": "myparts:Affine", "units": 3})
    assert layer.hparams() == {"name": "myparts:Affine", "units": 3, "scale": 0.5}
    assert build("layer", layer.hparams()).hparams() == layer.hparams()
    act = build("activation", "myparts:Softsign")        # a plain class, adapted
    assert act.bounds is None and act.hparams() == {"name": "myparts:Softsign"}
    assert plugins.is_user(act) and not plugins.is_user(build("activation", "tanh"))
    Z = np.linspace(-2, 2, 5)[None, :]
    assert np.allclose(act.forward(Z), Z / (1 + np.abs(Z)))


def test_story1_example_buggy_command(store, store_dir, tmp_path):
    """examples/story1_layers/README.md's first command: the check stops it, one line."""
    store = store_dir
    p = cli("nets-train", "model=sequential", "loss=mse", "target=one_hot", "optimizer.lr=0.5",
            "optimizer.weight_decay=0.0001", "train.batch_size=null", "train.epochs=300",
            'model.layers=[{name: "mylayers:HiddenSigmoidDense", units: 30}, '
            '{name: "mylayers:SigmoidDense", units: 10}]',
            f"tracking.uri={store}", "tracking.progress=off", "tracking.experiment=story1-example",
            f"hydra.run.dir={tmp_path / 'outputs'}", cwd=EXAMPLES / "buggy")
    assert p.returncode == 1
    [line] = [ln for ln in p.stderr.splitlines() if ln.startswith("nets-train:")]
    assert ("nets-train: run failed: ComponentCheckError: gradient check failed: "
            "mylayers:SigmoidDense parameter b: relative error 0.97 (threshold 1e-4)") in line
    client = MlflowClient("sqlite:///" + str(store / "mlflow.db"))
    [run] = client.search_runs([client.get_experiment_by_name("story1-example").experiment_id])
    assert run.info.status == "FAILED" and "curves/loss_train" not in run.data.metrics


def test_initializer_target_and_model_by_import_path(userdir):
    userdir("myrest", '''
        import numpy as np
        from nets.models import MLP
        from nets.targets import Target

        class Halves:
            """Every weight U[-0.5, 0.5), whatever the fan-in."""

            def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float64):
                return (rng.random(shape) - 0.5).astype(dtype)

        class Smoothed(Target):
            """One-hot targets pulled towards 1/K by eps."""
            values = (0.0, 1.0)

            def __init__(self, eps: float = 0.1):
                self.eps = eps

            def encode(self, y, n_classes, dtype=np.float64):
                T = np.full((len(y), n_classes), self.eps / n_classes, dtype=dtype)
                T[np.arange(len(y)), y] += 1 - self.eps
                return T

        class WideMLP(MLP):
            """An MLP whose hidden layers are twice as wide as asked."""

            def __init__(self, hidden=(8,), activation="tanh", output="softmax", init="xavier",
                         bias_init="zeros", bias_input: float = 1.0, dropout: float = 0.0,
                         in_shape=None, n_out=None, rng=None, dtype=np.float64, image_shape=None):
                super().__init__([2 * h for h in hidden], activation, output, init, bias_init,
                                 bias_input, dropout, in_shape, n_out, rng, dtype, image_shape)
        ''')
    run = build_run({"dataset": {"name": "xor", "n_samples": 40},
                     "model": {"name": "myrest:WideMLP", "hidden": [3], "init": "myrest:Halves",
                               "output": "sigmoid"},
                     "loss": "mse", "target": {"name": "myrest:Smoothed", "eps": 0.2},
                     "train": {"epochs": 2}})
    assert [p.value.shape for p in run.model.params] == [(2, 6), (6,), (6, 2), (2,)]
    assert np.abs(run.model.params[0].value).max() < 0.5
    assert run.target.encode(np.array([1]), 2).tolist() == [[0.1, 0.9]]
    results = usercheck.check_run(run)              # the user model, checked as a whole
    assert {r.part for r in results} == {"dense1.W", "dense1.b", "dense2.W", "dense2.b"}
    assert max(r.error for r in results) < 1e-6
    history = run.trainer().run().history
    assert len(history["train/loss"]) == 3 and np.all(np.isfinite(history["train/loss"]))
