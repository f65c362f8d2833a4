"""Health metrics during training, verdicts after it, and a gradient check before it.

All numpy-only (no MLflow, Hydra or OmegaConf here). One idea per module:

``settings``    ``DiagnosticsSettings``, the ``diagnostics`` config section (every rule
                threshold is a field).
``monitor``     ``HealthMonitor``, a trainer hook (see ``nets.train``) that adds the
                ``health/...`` keys below to each epoch's metrics, so they reach
                ``Result.history`` and MLflow like any other metric; ``baselines`` and
                ``input_stats``, constant over a run.
``runinfo``     ``RunInfo``: the static facts the rules read (baselines, input statistics,
                depth, the config values the advice quotes), from a live run or a record.
``rules``       the verdict rules, one small registered object each, declaring which
                verdicts they cause and which silence them.
``verdicts``    ``diagnose(history, info, settings)``: a pure function of a recorded history
                (it also works on one read back from MLflow, or on another app's plain
                curves); ``explain`` turns the verdicts into markdown for the run's
                description, ``summary`` into the ``nets.diagnosis`` tag.
``gradcheck``   ``gradcheck_model``/``gradcheck_trainer``: analytic gradients against
                central differences before training; ``GradientCheckError``.

Health metrics
--------------
Keys are the same at every epoch (epoch 0 included; 0 where a value is undefined), and
depend only on the model's layers and the task. ``<layer>`` is a layer label such as
``dense1``, ``conv2``, ``activation1``.

==================================  ==========================================================
key                                 meaning
==================================  ==========================================================
``health/grad_norm/<layer>``        L2 norm of the gradient the epoch's last update used
                                    (all the layer's parameters, L2 term included), read
                                    from ``Param.grad`` at the epoch's end: nothing runs per
                                    step. Epoch 0 (no update yet): the gradient at the
                                    initial weights on the probe batch, scaled to a training
                                    batch when ``reduction=sum``.
``health/weight_norm/<layer>``      L2 norm of the layer's parameters at the end of the epoch.
``health/update_ratio/<layer>``     ``||P_end - P_start|| / ||P_start||`` over the epoch (one
                                    copy of the weights per epoch, not per step: it measures
                                    how far the epoch moved the layer, whatever the number of
                                    steps in it). 0 at epoch 0 and after a rolled-back epoch.
``health/saturated/<activation>``   sigmoid/tanh hidden layers: share of the probe's unit
                                    outputs within ``saturation_eps * (high - low)`` of a
                                    bound (there the derivative is nearly 0).
``health/dead/<activation>``        ReLU-family hidden layers: share of units (channels for
                                    convolutions) whose output is <= 0 on *every* probe row.
``health/pred/top_class``           classification: the most frequently predicted class,
``health/pred/top_class_share``     and its share of the probe predictions;
``health/pred/entropy``             entropy of the predicted-class distribution / log(K):
                                    1 = every class equally often, 0 = always one class;
``health/pred/true_class_score``    mean output (probability for softmax) of the true class;
``health/pred/margin``              mean of (true-class output - best other output); > 0
                                    means correct on average;
``health/pred/changed``             share of probe predictions whose class differs from the
                                    previous epoch's (0 at epoch 0);
``health/pred/worst_class``         the class with the lowest recall on the probe, and that
``health/pred/worst_recall``        recall (0: a class that is never predicted).
``health/schedule/<event>``         cumulative count of the schedule's ``increase``,
                                    ``decrease``, ``rollback`` and ``cut`` events (the last
                                    value is the run's total).
``health/baseline/...``             constant lines to read the curves against:
                                    ``chance_accuracy`` (1/K), ``majority_accuracy`` (always
                                    predicting the most frequent validation label; on the
                                    training labels: ``train_majority_accuracy``) and
                                    ``prior_loss`` (cross-entropy of predicting the label
                                    shares); regression: ``mae`` of predicting the training
                                    mean. The diagnosis reads these, nothing else.
``health/input/scale``, ``spread``  the training features' largest RMS and its ratio to the
                                    median feature's (computed once per run).
==================================  ==========================================================

The output activation is not checked for saturation: a tanh output near -1 for the
nine wrong digits is what ``plus_minus_one`` targets ask for. During a run the monitor
appends plain-language ``warnings`` when a condition holds for ``warn_patience`` (3)
consecutive epochs (collapse, saturation, dead units) or at once (exploding loss).
"""

from nets.diagnostics.gradcheck import GradientCheckError, gradcheck_model, gradcheck_trainer
from nets.diagnostics.monitor import PROBE_SEED, SCHEDULE_EVENTS, HealthMonitor, baselines, \
    input_stats
from nets.diagnostics.rules import RULES, Advice, Rule, Verdict
from nets.diagnostics.runinfo import RunInfo
from nets.diagnostics.settings import DiagnosticsSettings
from nets.diagnostics.verdicts import VERDICTS, Diagnosis, diagnose, explain, summary

__all__ = ["DiagnosticsSettings", "HealthMonitor", "baselines", "input_stats", "RunInfo",
           "Verdict", "Advice", "Rule", "RULES", "VERDICTS", "Diagnosis", "diagnose",
           "explain", "summary", "gradcheck_model", "gradcheck_trainer",
           "GradientCheckError", "SCHEDULE_EVENTS", "PROBE_SEED"]
