"""A minimal numpy classifier as a plain Hydra app: softmax regression on Gaussian
blobs, trained by mini-batch gradient descent, curves logged with plain
``mlflow.log_metrics`` under the keys nets' diagnosis reads.

    python examples/classifier/app.py -m hydra/launcher=nets lr=0.01,0.1,1 seed=0,1
"""

from __future__ import annotations

import hydra
import mlflow
import numpy as np
from omegaconf import DictConfig


def blobs(n: int, k: int, d: int, spread: float, rng):
    centers = rng.normal(0, 3, (k, d))
    y = rng.integers(0, k, n)
    return centers[y] + rng.normal(0, spread, (n, d)), y


def softmax(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    return P / P.sum(axis=1, keepdims=True)


def evaluate(W, b, X, y):
    P = softmax(X @ W + b)
    loss = -np.mean(np.log(P[np.arange(len(y)), y] + 1e-12))
    return float(loss), float(np.mean(P.argmax(axis=1) == y))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    rng = np.random.default_rng(cfg.seed)
    X, y = blobs(cfg.n_samples, cfg.classes, cfg.features, cfg.spread, rng)
    n_val = len(y) // 4
    Xv, yv, Xt, yt = X[:n_val], y[:n_val], X[n_val:], y[n_val:]
    W = np.zeros((cfg.features, cfg.classes))
    b = np.zeros(cfg.classes)
    for epoch in range(cfg.epochs + 1):
        if epoch:
            for i in range(0, len(yt), cfg.batch_size):
                idx = rng.permutation(len(yt))[:cfg.batch_size]
                P = softmax(Xt[idx] @ W + b)
                P[np.arange(len(idx)), yt[idx]] -= 1.0           # dL/dZ of cross-entropy
                W -= cfg.lr * Xt[idx].T @ P / len(idx)
                b -= cfg.lr * P.mean(axis=0)
        tl, ta = evaluate(W, b, Xt, yt)
        vl, va = evaluate(W, b, Xv, yv)
        mlflow.log_metrics({"train/loss": tl, "train/accuracy": ta, "val/loss": vl,
                            "val/accuracy": va}, step=epoch)
    return va


if __name__ == "__main__":
    main()
