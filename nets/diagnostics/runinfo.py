"""``RunInfo``: the static facts about a run that the verdict rules read besides its curves.

Built from a live run (``from_run``: the ``Data`` and the built objects) or from what a
run recorded (``from_record``: its ``health/...`` metrics, tags and params), so
``diagnose`` gives the same verdicts on a run read back from MLflow. The baselines come
from one place, ``monitor.baselines`` (recorded as ``health/baseline/...``), and the input
statistics from ``monitor.input_stats`` (``health/input/...``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Mapping

from nets.diagnostics.monitor import baselines, input_stats
from nets.layers import ActivationLayer


@dataclass
class RunInfo:
    """Static facts about a run that the rules need besides its history.

    Attributes
    ----------
    task : {"classification", "regression"}
    chance_accuracy, majority_accuracy : float, optional
        ``1/K`` and the most frequent validation label's share (classification).
    train_majority_accuracy : float, optional
        The most frequent training label's share (to judge the training accuracy).
    prior_loss : float, optional
        Cross-entropy of always predicting the validation label shares (the label
        prior's entropy; ln K when balanced).
    baseline_mae : float, optional
        Validation MAE of predicting the training mean (regression).
    val_is_train : bool
        The validation set is the training set (``val_fraction=0``).
    outcome, reason : str
        ``Result.outcome`` and ``Result.reason``.
    input_scale, input_spread : float, optional
        ``health/input/scale`` and ``spread`` (see ``monitor.input_stats``).
    n_layers : int, optional
        Layers with parameters (a logistic regression has 1).
    n_hidden : int, optional
        Hidden activation layers (0: a linear or logistic model).
    config : dict
        Flat config values the advice quotes: ``train.reduction``, ``train.batch_size``,
        ``optimizer.name``, ``optimizer.lr``, ``optimizer.momentum``, ``schedule.name``,
        ``loss``, ``model.output``, ``model.activation``, ``model.init``,
        ``model.bias_init`` (a name, or ``constant(-3)``), ``model.hidden``.
    """

    task: str = "classification"
    chance_accuracy: float | None = None
    majority_accuracy: float | None = None
    train_majority_accuracy: float | None = None
    prior_loss: float | None = None
    baseline_mae: float | None = None
    val_is_train: bool = False
    outcome: str = "completed"
    reason: str = ""
    input_scale: float | None = None
    input_spread: float | None = None
    n_layers: int | None = None
    n_hidden: int | None = None
    config: dict = field(default_factory=dict)

    @classmethod
    def from_run(cls, run, result=None) -> "RunInfo":
        """From a ``nets.train.Run`` (and its ``Result``)."""
        data, model = run.data, run.model
        b = {**baselines(data), **input_stats(data.X_train)}
        cfg = {"train.reduction": run.settings.reduction,
               "train.batch_size": run.settings.batch_size,
               "optimizer.name": run.optimizer.name, "optimizer.lr": run.optimizer.lr,
               "schedule.name": run.schedule.name, "loss": run.loss.name,
               "model.output": model.output.name}
        if getattr(run.optimizer, "momentum", None) is not None:
            cfg["optimizer.momentum"] = run.optimizer.momentum
        act = getattr(model, "activation", None)
        if act is not None:
            cfg["model.activation"] = getattr(act, "name", str(act))
        for key in ("init", "bias_init"):
            if hasattr(model, key):
                cfg[f"model.{key}"] = _spec_text(getattr(model, key))
        hidden = getattr(model, "hidden", None)
        if hidden is not None:
            cfg["model.hidden"] = list(hidden)
        return cls(task=data.task,
                   chance_accuracy=b.get("health/baseline/chance_accuracy"),
                   majority_accuracy=b.get("health/baseline/majority_accuracy"),
                   train_majority_accuracy=b.get("health/baseline/train_majority_accuracy"),
                   prior_loss=b.get("health/baseline/prior_loss"),
                   baseline_mae=b.get("health/baseline/mae"),
                   val_is_train=data.X_val is data.X_train,
                   outcome=getattr(result, "outcome", "completed"),
                   reason=getattr(result, "reason", ""),
                   input_scale=b["health/input/scale"], input_spread=b["health/input/spread"],
                   n_layers=sum(1 for layer in model.net if layer.params),
                   n_hidden=sum(1 for layer in model.net if isinstance(layer, ActivationLayer)),
                   config=cfg)

    @classmethod
    def from_record(cls, metrics: Mapping[str, float], tags: Mapping[str, str],
                    params: Mapping[str, str] | None = None) -> "RunInfo":
        """From what a run recorded: its last metric values (``health/baseline/...``,
        ``health/input/...``, ``data/val_is_train``), the tags (``nets.task``,
        ``nets.outcome``, ``nets.reason``) and optionally the params."""
        p = dict(params or {})

        def spec(key):  # a spec is logged as "key" (a name) or "key.name" (a mapping)
            name = p.get(f"{key}.name", p.get(key))
            if name == "constant" and f"{key}.value" in p:
                return f"constant({p[f'{key}.value']})"
            return name

        bs = p.get("train.batch_size")
        # Depth is known from the params for an MLP only (a CNN's depth is in its blocks).
        hidden = _parse_list(p.get("model.hidden")) if p.get("model.name") == "mlp" else None
        config = {"train.reduction": p.get("train.reduction"),
                  "train.batch_size": int(bs) if bs is not None and str(bs).isdigit() else None,
                  "optimizer.name": spec("optimizer"), "optimizer.lr": p.get("optimizer.lr"),
                  "optimizer.momentum": p.get("optimizer.momentum"),
                  "schedule.name": spec("schedule"), "loss": spec("loss"),
                  "model.output": spec("model.output"),
                  "model.activation": spec("model.activation"),
                  "model.init": spec("model.init"), "model.bias_init": spec("model.bias_init"),
                  "model.hidden": hidden}
        m = {k: float(v) for k, v in metrics.items()}
        return cls(task=tags.get("nets.task", "classification"),
                   chance_accuracy=m.get("health/baseline/chance_accuracy"),
                   majority_accuracy=m.get("health/baseline/majority_accuracy"),
                   train_majority_accuracy=m.get("health/baseline/train_majority_accuracy"),
                   prior_loss=m.get("health/baseline/prior_loss"),
                   baseline_mae=m.get("health/baseline/mae"),
                   val_is_train=bool(m.get("data/val_is_train", 0.0)),
                   outcome=tags.get("nets.outcome", "completed"),
                   reason=tags.get("nets.reason", ""),
                   input_scale=m.get("health/input/scale"),
                   input_spread=m.get("health/input/spread"),
                   n_hidden=None if hidden is None else len(hidden),
                   n_layers=None if hidden is None else len(hidden) + 1,
                   config={k: v for k, v in config.items()
                           if v is not None or (k == "train.batch_size" and bs is not None)})


def _spec_text(spec: Any) -> str:
    """``"he"``, or ``"constant(-3.0)"`` for a mapping with one value."""
    if isinstance(spec, str):
        return spec
    if hasattr(spec, "hparams"):
        spec = spec.hparams()
    spec = dict(spec or {})
    name = spec.pop("name", "?")
    return f"{name}({', '.join(str(v) for v in spec.values())})" if spec else name


def _parse_list(text: str | None) -> list | None:
    if text is None:
        return None
    try:
        v = ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        return None
    if isinstance(v, int):
        return [v]
    return list(v) if isinstance(v, (list, tuple)) else None
