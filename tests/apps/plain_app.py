"""A plain Hydra app, as a user writes one: its own numpy loop, plain ``mlflow`` calls,
nothing from nets. The tests sweep it with ``hydra/launcher=nets``.

``mode`` makes a job misbehave at epoch 2 (``raise``, ``exit`` = ``os._exit(3)``) or
sleep ``pause`` seconds per epoch (``sleep``), to test the launcher's isolation.
"""

from __future__ import annotations

import os
import time

import hydra
import mlflow
import numpy as np
from omegaconf import DictConfig


def curves(lr: float, epochs: int, seed: int) -> list[dict]:
    """Logistic regression on two blobs, full batch: per-epoch losses and accuracies."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(-1, 1, (40, 2)), rng.normal(1, 1, (40, 2))])
    y = np.r_[np.zeros(40), np.ones(40)]
    idx = rng.permutation(80)
    Xt, yt, Xv, yv = X[idx[:60]], y[idx[:60]], X[idx[60:]], y[idx[60:]]
    w, b, out = np.zeros(2), 0.0, []
    for epoch in range(epochs + 1):
        if epoch:
            p = 1 / (1 + np.exp(-(Xt @ w + b)))
            w -= lr * Xt.T @ (p - yt) / len(yt)
            b -= lr * float(np.mean(p - yt))
        row = {}
        for name, A, t in (("train", Xt, yt), ("val", Xv, yv)):
            p = np.clip(1 / (1 + np.exp(-(A @ w + b))), 1e-12, 1 - 1e-12)
            row[f"{name}/loss"] = float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
            row[f"{name}/accuracy"] = float(np.mean((p > 0.5) == t))
        out.append(row)
    return out


def task(cfg: DictConfig) -> float:
    rows = curves(cfg.lr, cfg.epochs, cfg.seed)
    for epoch, row in enumerate(rows):
        if epoch == 2 and cfg.mode == "raise":
            raise ValueError(f"boom in my loop (lr={cfg.lr})")
        if epoch == 2 and cfg.mode == "exit":
            os._exit(3)
        if cfg.mode == "sleep":
            time.sleep(cfg.pause)
        if cfg.log:
            for key, value in row.items():
                mlflow.log_metric(key, value, step=epoch)
    if cfg.log:
        mlflow.log_param("my_own_param", "hello")
    return rows[-1]["val/accuracy"]


main = hydra.main(version_base="1.3", config_path="plain_conf", config_name="config")(task)

if __name__ == "__main__":
    main()
