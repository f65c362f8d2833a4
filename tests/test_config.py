"""The ``conf/`` tree against the registries: files, keys, composition, builds, round trips.

In-process and fast: Hydra composes with ``initialize_config_dir`` (no app run, no
MLflow) and ``nets.train.build_run`` builds every option on small data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _data import write_tiny_mnist
import yaml
from hydra import compose, initialize_config_dir

from nets.app import config as appconfig
from nets.app.schema import GROUPS, register
from nets.catalog import REGISTRIES, build
from nets.registry import ConfigError
from nets.train import build_run

CONF_DIR = appconfig.CONF_DIR
register()


def yaml_of(group: str, name: str) -> dict:
    return yaml.safe_load((CONF_DIR / group / f"{name}.yaml").read_text()) or {}


def compose_plain(overrides: list[str]) -> dict:
    """Compose ``config`` with ``overrides``; the strictly checked plain dict."""
    register()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return appconfig.to_plain(cfg)


def core(plain: dict) -> dict:
    return {k: v for k, v in plain.items() if k != "tracking"}


def write_tiny_csv(path: Path, n: int = 40, n_features: int = 3, n_classes: int = 3) -> Path:
    r = np.random.default_rng(0)
    rows = [",".join([str(i % n_classes)] + [f"{v:.4f}" for v in r.normal(size=n_features)])
            for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


# -- files <-> registries -------------------------------------------------------------

@pytest.mark.parametrize("group", GROUPS)
def test_yaml_files_match_registry_names(group):
    stems = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    assert stems == REGISTRIES[group].names()
    assert appconfig.options(group) == REGISTRIES[group].names()


@pytest.mark.parametrize("group,name", [(g, n) for g in GROUPS for n in REGISTRIES[g].names()])
def test_yaml_keys_are_the_hparams(group, name):
    doc = yaml_of(group, name)
    keys = [k for k in doc if k != "defaults"]
    assert sorted(keys) == sorted(REGISTRIES[group][name].hparam_names())
    # Every option extends its generated schema, so types and unknown keys are checked.
    assert doc.get("defaults") == [f"/nets_schema/{group}/{name}@_here_", "_self_"]


def test_config_default_options_exist():
    doc = yaml.safe_load((CONF_DIR / "config.yaml").read_text())
    chosen = {k: v for d in doc["defaults"] if isinstance(d, dict) for k, v in d.items()}
    for group in GROUPS:
        assert chosen[group] in REGISTRIES[group].names(), group


# -- every option composes and builds ------------------------------------------------

def _extra(group: str, name: str, tmp: Path) -> list[str]:
    """Overrides that make option ``group=name`` compose into a sensible, small run."""
    small = ["dataset.subsample=200"]  # the default dataset is digits
    if group == "dataset":
        return {
            "csv": [f"dataset.path='{write_tiny_csv(tmp / 'tiny.csv')}'"],
            "mnist": [f"dataset.path='{write_tiny_mnist(tmp / 'mnist')}'",
                      f"dataset.cache_dir='{tmp / 'cache'}'", "dataset.verify=false",
                      "dataset.download=false"],
            "shapes": ["dataset.n_samples=130"],
            "digits": small,
            "random_regression": ["loss=mse", "model.output=identity"],
            "tiny_regression": ["loss=mse", "model.output=identity"],
        }.get(name, [])
    if group == "model":
        return small + {"sequential": ["model.layers=[{name: dense, units: 10}]",
                                       "model.output=softmax"]}.get(name, [])
    if group == "loss":
        return small + {"bce": ["model.output=sigmoid", "target=one_hot"],
                        "mse": ["target=one_hot"], "sse": ["target=one_hot"]}.get(name, [])
    if group == "target":
        return {"plus_minus_one": small + ["model.output=tanh", "loss=mse"],
                "raw": ["dataset=tiny_regression", "loss=mse", "model.output=identity"],
                }.get(name, small)
    return small


def _option_params():
    return [pytest.param(g, n, id=f"{g}={n}") for g in GROUPS for n in appconfig.options(g)]


@pytest.mark.parametrize("group,name", _option_params())
def test_every_option_composes_and_builds(group, name, tmp_path):
    plain = compose_plain([f"{group}={name}", *_extra(group, name, tmp_path)])
    assert plain[group]["name"] == name
    run = build_run(core(plain))
    assert run.settings.epochs == plain["train"]["epochs"]
    assert len(run.data.X_train) > 0 and len(run.data.X_val) > 0
    comp = {"dataset": None, "model": run.model, "loss": run.loss, "target": run.target,
            "optimizer": run.optimizer, "schedule": run.schedule}[group]
    if comp is not None:
        assert comp.name == name or (group == "target" and name == "auto")
    else:
        assert run.data.name == name
    # One forward pass gives one output per class/target.
    Z = run.model.forward(run.data.X_train[:4].astype(run.settings.dtype))
    n_out = run.data.n_classes if run.data.task == "classification" else \
        run.data.y_train.reshape(len(run.data.y_train), -1).shape[1]
    assert Z.shape == (min(4, len(run.data.X_train)), n_out)


@pytest.mark.parametrize("group,name", _option_params())
def test_selected_option_keeps_its_own_yaml_values(group, name):
    """Nothing in config.yaml's root leaks into an option (e.g. a root ``model.hidden``
    would give model=cnn a dense layer and break model=sequential)."""
    plain = compose_plain([f"{group}={name}"])
    doc = yaml_of(group, name)
    for k in doc:
        if k != "defaults":
            assert plain[group][k] == doc[k], f"{group}={name}: {k}"


def test_experiment_options_are_the_stories():
    assert [p.stem for p in sorted((CONF_DIR / "experiment").glob("story*.yaml"))] == \
        ["story1", "story2", "story3", "story4", "story4_ce"]


STORY_CHECKS = {
    "story1": (["dataset.subsample=300"], {"model.hidden": [30], "model.activation": "sigmoid",
                                           "loss.name": "mse", "optimizer.lr": 0.01,
                                           "train.batch_size": None}),
    "story2": ([], {"model.hidden": [3], "model.bias_input": -1.0, "loss.name": "sse",
                    "target.name": "raw", "train.reduction": "sum", "train.tol": 0.01}),
    "story3": (["dataset.n_samples=130"], {"model.name": "cnn", "model.hidden": [],
                                           "model.dropout": 0.25, "optimizer.name": "momentum",
                                           "optimizer.lr": 0.0001, "dataset.n_classes": 13}),
    "story4": ([], {"model.activation": "tanh", "model.output": "tanh", "loss.name": "mse",
                    "target.name": "plus_minus_one", "train.batch_size": 100,
                    "train.reduction": "sum", "optimizer.lr": 0.1}),
}


@pytest.mark.parametrize("story", sorted(STORY_CHECKS))
def test_story_experiments_compose_and_build(story):
    extra, expect = STORY_CHECKS[story]
    plain = compose_plain([f"experiment={story}", *extra])
    for dotted, want in expect.items():
        a, b = dotted.split(".")
        assert plain[a][b] == want, dotted
    run = build_run(core(plain))
    Z = run.model.forward(run.data.X_train[:2].astype(run.settings.dtype))
    assert Z.shape[0] == 2


def test_story3_cnn_builds_conv_stack():
    plain = compose_plain(["experiment=story3", "dataset.n_samples=130"])
    run = build_run(core(plain))
    convs = [layer for layer in run.model.net if layer.name == "conv2d"]
    assert [c.channels for c in convs] == [8, 16, 32]


# -- build(kind, obj.hparams()) round trips ----------------------------------------------

RUNTIME_KINDS = {"model"}  # builds need in_shape, n_out ...
REQUIRED_SPECS = {("layer", "dense"): {"units": 3}}
EXTRA_SPECS = [
    ("optimizer", {"name": "adam", "lr": 0.01, "beta1": 0.8, "weight_decay": 1e-3}),
    ("schedule", {"name": "warmup", "steps": 3, "after": {"name": "step", "step_size": 2}}),
    ("schedule", {"name": "bold_driver", "increase": 1.1, "rollback": True}),
    ("dataset", {"name": "blobs", "n_samples": 50, "n_classes": 4, "subsample": 30,
                 "scaling": "standard"}),
    ("layer", {"name": "conv2d", "channels": 4, "kernel": 5, "padding": 2,
               "init": {"name": "normal"}}),
    ("activation", {"name": "leaky_relu", "alpha": 0.2}),
]


def _roundtrip_params():
    out = []
    for kind in sorted(REGISTRIES):
        if kind in RUNTIME_KINDS:
            continue
        for name in REGISTRIES[kind].names():
            out.append(pytest.param(kind, {"name": name, **REQUIRED_SPECS.get((kind, name), {})},
                                    id=f"{kind}-{name}"))
    for i, (kind, spec) in enumerate(EXTRA_SPECS):
        out.append(pytest.param(kind, spec, id=f"{kind}-{spec['name']}-custom{i}"))
    return out


@pytest.mark.parametrize("kind,spec", _roundtrip_params())
def test_build_hparams_round_trip(kind, spec, tmp_path):
    spec = dict(spec)
    if (kind, spec["name"]) == ("dataset", "csv"):
        spec["path"] = str(write_tiny_csv(tmp_path / "t.csv"))
    obj = build(kind, spec)
    hp = obj.hparams()
    assert hp["name"] == spec["name"]
    assert set(hp) == {"name", *type(obj).hparam_names()}
    again = build(kind, hp)
    assert type(again) is type(obj)
    assert again.hparams() == hp
    for k, v in spec.items():  # what the spec said survives (nested specs may gain defaults)
        if not isinstance(v, dict):
            assert hp[k] == v, k


def test_every_kind_is_covered():
    assert {"activation", "dataset", "init", "layer", "loss", "model", "optimizer",
            "schedule", "target"} <= set(REGISTRIES)


MODEL_CASES = [
    ({"name": "mlp"}, dict(in_shape=(6,), n_out=3)),
    ({"name": "mlp", "hidden": [5, 4], "activation": {"name": "leaky_relu", "alpha": 0.1},
      "output": "sigmoid", "init": "he", "bias_init": {"name": "constant"}, "dropout": 0.2,
      "bias_input": -1.0}, dict(in_shape=(6,), n_out=3)),
    ({"name": "cnn"}, dict(in_shape=(64,), n_out=10, image_shape=(1, 8, 8))),
    ({"name": "cnn", "conv": [{"channels": 4, "kernel": 3, "stride": 1, "padding": 1, "pool": 2},
                              {"channels": 6, "kernel": 3, "stride": 1, "padding": 0, "pool": 1}],
      "hidden": [7], "activation": "tanh", "dropout": 0.25},
     dict(in_shape=(2 * 8 * 8,), n_out=4, image_shape=(2, 8, 8))),
    ({"name": "sequential", "layers": [{"name": "dense", "units": 4},
                                       {"name": "activation", "fn": "tanh"},
                                       {"name": "dense", "units": 2}]},
     dict(in_shape=(3,), n_out=2)),
]


@pytest.mark.parametrize("spec,runtime", MODEL_CASES, ids=lambda x: x.get("name", "") if
                         isinstance(x, dict) and "name" in x else "")
def test_model_round_trip_with_runtime_args(spec, runtime):
    rt = {**runtime, "rng": np.random.default_rng(7)}
    model = build("model", spec, **rt)
    hp = model.hparams()
    assert not set(hp) & set(type(model).runtime_args), "runtime args leaked into hparams"
    again = build("model", hp, **{**runtime, "rng": np.random.default_rng(7)})
    assert again.hparams() == hp
    w1, w2 = model.get_weights(), again.get_weights()
    assert list(w1) == list(w2)
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k])
    X = np.random.default_rng(0).normal(size=(2, *runtime["in_shape"]))
    np.testing.assert_array_equal(model.forward(X), again.forward(X))


# -- bugs found while writing the above -------------------------------------------------

def test_missing_required_hparam_is_a_config_error():
    with pytest.raises(ConfigError, match="units"):
        build("layer", {"name": "dense"})


def test_model_output_width_mismatch_is_a_config_error():
    with pytest.raises(ConfigError, match="model"):
        build_run({"dataset": "blobs", "loss": "mse", "target": "one_hot",
                   "model": {"name": "sequential", "layers": [{"name": "dense", "units": 5}]}})


def test_build_run_rejects_what_the_cli_rejects():
    with pytest.raises(ConfigError, match="model.output"):
        build_run({"dataset": {"name": "blobs"}, "loss": "bce"})
    with pytest.raises(ConfigError, match="needs an image dataset"):
        build_run({"dataset": {"name": "blobs"}, "model": "cnn"})
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        build_run({"dataset": {"name": "blobs"}, "train": {"epochs": -1}})
