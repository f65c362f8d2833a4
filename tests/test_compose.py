"""The launcher's fast composition of sweep points equals Hydra's own, point by point.

``hydra_plugins/nets_launcher/_compose.py`` composes a sweep through Hydra once per
distinct set of config-group choices and applies each point's value overrides to a
copy (issue 16: a 200-point sweep planned in minutes). Whatever a point's overrides,
its config, with the ``hydra`` node, must be what ``load_sweep_config`` gives.
"""

from __future__ import annotations

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from hydra_plugins.nets_launcher._compose import PointComposer
from nets.app.config import CONF_DIR
from nets.app.schema import register

register()

POINTS = [
    ["optimizer.lr=0.1"],
    ["optimizer.lr=0.3", "model.activation=tanh"],
    ["model.activation=tanh", "optimizer.lr=0.3"],            # same values, other order
    ["optimizer=adam", "optimizer.lr=0.001"],                 # a group and a value
    ["optimizer.lr=0.001", "optimizer=adam", "seed=3"],       # value before its group
    ["model=cnn", "dataset=shapes", "train.epochs=2"],
    ["+train.note=x", "optimizer.lr=0.2"],                    # an add: Hydra's own path
    ["optimizer.lr=0.05", "hydra.job.chdir=false"],           # a hydra key
    ["model.hidden=[32,16]", "train.batch_size=16"],          # list values
    ["seed=1"],
]


@pytest.fixture(scope="module")
def loader():
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


@pytest.mark.parametrize("master_overrides", [
    [], ["hydra.sweep.subdir=${hydra.job.override_dirname}", "train.epochs=3"]])
def test_every_point_is_what_hydra_composes(loader, tmp_path, monkeypatch, master_overrides):
    monkeypatch.chdir(tmp_path)
    master = loader.load_configuration("config", overrides=master_overrides,
                                       run_mode=RunMode.MULTIRUN)
    composer = PointComposer(loader, master)
    shared = 0
    for num, overrides in enumerate(POINTS):
        point = composer.compose(overrides, num)
        hydras = loader.load_sweep_config(master, overrides)
        with open_dict(hydras):
            hydras.hydra.job.num, hydras.hydra.job.id = num, f"{hydras.hydra.job.name}_{num}"
        ours = point.config
        assert OmegaConf.to_container(ours) == OmegaConf.to_container(hydras), overrides
        app = OmegaConf.to_container(hydras)
        app.pop("hydra")
        assert OmegaConf.to_container(point.task_config) == app, overrides
        assert point.subdir == str(hydras.hydra.sweep.subdir)
        shared += point.overrides != []
    assert shared >= 7, "most points should reuse a template"


def test_a_bad_value_fails_as_in_hydra(loader, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    master = loader.load_configuration("config", overrides=[], run_mode=RunMode.MULTIRUN)
    composer = PointComposer(loader, master)
    with pytest.raises(Exception) as ours:
        composer.compose(["optimizer.lr=fast"], 0)
    with pytest.raises(Exception) as hydras:
        loader.load_sweep_config(master, ["optimizer.lr=fast"])
    assert type(ours.value) is type(hydras.value)
    assert str(ours.value) == str(hydras.value)
