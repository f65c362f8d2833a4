"""Every sweep point's config, as Hydra's ``load_sweep_config`` makes it, composed once
per distinct structure.

Hydra composes each point from scratch: it re-reads the YAML files, rebuilds the
defaults tree and merges every file again, ~0.3 s a point on this kind of machine, so
a 200-point sweep spent a minute or more planning before its first job (issue 16).
Most points of a grid differ only in values (``optimizer.lr=0.1``), not in which
files are composed. Hydra itself applies such value overrides last, to the merged
config (``ConfigLoaderImpl._load_configuration_impl``); so here the merge is done once
per distinct set of *structural* overrides (config-group choices such as
``model=cnn``, ``hydra.*`` keys) through Hydra, and each point is a copy of that
template with its value overrides applied by Hydra's own function, in their order, and
Hydra's bookkeeping for the point (``hydra.overrides.task``, ``override_dirname``) set
as Hydra sets it. ``tests/test_compose.py`` compares the result with Hydra's
composition for every point of mixed sweeps.

Anything else (``+key``, ``~key``, ``++key``, an override with a package) composes the
point through Hydra, exactly as before.
"""

from __future__ import annotations

import copy
from typing import Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict, read_write


class PointComposer:
    """``compose(overrides)`` gives what ``loader.load_sweep_config(master, overrides)``
    gives, reusing one Hydra composition for points that only change values."""

    def __init__(self, loader, master: DictConfig):
        self.loader, self.master = loader, master
        self.parser = OverridesParser.create()
        # Which keys are config groups: Hydra asks its repository the same question.
        self.repo = getattr(loader, "repository", None)
        self.templates: dict[tuple[str, ...], tuple[DictConfig, DictConfig, bool]] = {}

    def _is_value(self, o: Override) -> bool:
        return (self.repo is not None and o.type == OverrideType.CHANGE
                and o.package is None and not o.is_hydra_override()
                and not o.is_sweep_override()
                and not self.repo.group_exists(o.key_or_group))

    def _is_group(self, o: Override) -> bool:
        return o.is_hydra_override() or self.repo.group_exists(o.key_or_group)

    def compose(self, overrides: Sequence[str], num: int) -> "Point":
        """Point ``num`` of the sweep, with ``overrides``."""
        parsed = self.parser.parse_overrides(overrides=list(overrides))
        values = [o for o in parsed if self._is_value(o)]
        structural = [o for o in parsed if not self._is_value(o)]
        if not values or not all(self._is_group(o) for o in structural):
            # Nothing to share, or a structural override that edits values itself
            # (+x, ~x): its order among the value overrides matters. Hydra does it all.
            cfg = self.loader.load_sweep_config(self.master, list(overrides))
            return Point(cfg, [], num, without_hydra(cfg), True)
        key = tuple(o.input_line for o in structural)
        if key not in self.templates:
            tpl = self.loader.load_sweep_config(self.master, list(key))
            app = without_hydra(tpl)
            self.templates[key] = tpl, app, "hydra:" in OmegaConf.to_yaml(app)
        tpl, tpl_app, uses_hydra = self.templates[key]
        task_cfg = copy.deepcopy(tpl_app)
        ConfigLoaderImpl._apply_overrides_to_config(values, task_cfg)
        return Point(tpl, list(overrides), num, task_cfg,
                     uses_hydra or any("hydra:" in o.input_line for o in values))


class Point:
    """One sweep point: its app config now (``task_config``: what the check and the
    job's params need) and its full config with the ``hydra`` node when asked
    (``config``: a copy of the template's, the hydra node being most of the cost; a
    dry run never needs it, a worker builds it for the job it runs).

    ``uses_hydra``: the app's config reads the ``hydra:`` resolver, so ``HydraConfig``
    must hold this point's config while it is resolved.
    """

    def __init__(self, base: DictConfig, overrides: list[str], num: int,
                 task_config: DictConfig, uses_hydra: bool):
        # ``overrides`` empty: ``base`` is the point's own config already.
        self.base, self.overrides, self.num = base, overrides, num
        self.task_config, self.uses_hydra = task_config, uses_hydra
        self._config: DictConfig | None = None if overrides else base

    def __getstate__(self):  # travels to a worker without its copies
        return {**self.__dict__, "_config": None if self.overrides else self.base,
                "task_config": None}

    @property
    def subdir(self) -> str:
        """``hydra.sweep.subdir`` of this point (Hydra's default needs no copy)."""
        raw = OmegaConf.to_container(self.base.hydra.sweep, resolve=False).get("subdir")
        if raw == "${hydra.job.num}":
            return str(self.num)
        return str(self.config.hydra.sweep.subdir)

    @property
    def config(self) -> DictConfig:
        if self._config is None:
            self._config = self._build()
        cfg = self._config
        if cfg.hydra.job.get("num") != self.num:
            with open_dict(cfg):
                cfg.hydra.job.num = self.num
                cfg.hydra.job.id = f"{cfg.hydra.job.name}_{self.num}"
        return cfg

    def _build(self) -> DictConfig:
        """What ``load_sweep_config`` gives: the template, the value overrides applied
        by Hydra's own function in their order, Hydra's bookkeeping for all of them."""
        parsed = OverridesParser.create().parse_overrides(overrides=self.overrides)
        task = [o.input_line for o in parsed if not o.is_hydra_override()]
        template_lines = set(OmegaConf.to_container(self.base.hydra.overrides.task))
        values = [o for o in parsed if not o.is_hydra_override()
                  and o.input_line not in template_lines]
        cfg = copy.deepcopy(self.base)
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        app = [o for o in parsed if not o.is_hydra_override()]
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.overrides.task = task
            dirname = cfg.hydra.job.config.override_dirname
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=app, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep,
                exclude_keys=list(dirname.exclude_keys))
        return cfg


def without_hydra(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` without its ``hydra`` node: the task's config."""
    out = copy.deepcopy(cfg)
    with read_write(out), open_dict(out):
        del out["hydra"]
    return out
