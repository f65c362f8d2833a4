"""Story 2's user code, as that user wrote it: a hand-written backprop class with its
own loop, stopping when the summed squared gradient falls below ``tol``, reporting
iterations, MAE and SSE. Nothing here knows about nets: it is a plain Hydra app that
logs with plain ``mlflow.log_metrics``.

Sweep it with nets' launcher (one MLflow parent run, one child run per job, a diagnosis
on each)::

    python examples/backprop/app.py -m hydra/launcher=nets tol=1,0.1,0.01,0.001 data=tiny,random
"""

from __future__ import annotations

import hydra
import mlflow
import numpy as np
from omegaconf import DictConfig


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Backprop:
    """One hidden layer of sigmoid units, identity output; the bias is a constant -1
    input, weights uniform in [0, 1)."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, lr: float, rng):
        self.V = rng.random((n_in + 1, n_hidden))     # input (+ bias) -> hidden
        self.W = rng.random((n_hidden + 1, n_out))    # hidden (+ bias) -> output
        self.lr = lr

    @staticmethod
    def _bias(A):
        return np.hstack([A, -np.ones((A.shape[0], 1))])

    def forward(self, X):
        self.Xb = self._bias(X)
        self.H = sigmoid(self.Xb @ self.V)
        self.Hb = self._bias(self.H)
        return self.Hb @ self.W

    def gradients(self, X, Y):
        E = self.forward(X) - Y                        # (n, n_out)
        dW = self.Hb.T @ E
        dH = (E @ self.W[:-1].T) * self.H * (1 - self.H)
        dV = self.Xb.T @ dH
        return dV, dW, E

    def fit(self, X, Y, tol: float, max_iter: int, log_every: int):
        for it in range(1, max_iter + 1):
            dV, dW, E = self.gradients(X, Y)
            grad2 = float(np.sum(dV ** 2) + np.sum(dW ** 2))
            if it % log_every == 0 or grad2 < tol:
                mlflow.log_metrics({"train/loss": float(np.sum(E ** 2)),
                                    "val/mae": float(np.mean(np.abs(E))),
                                    "grad_sq": grad2}, step=it)
            if grad2 < tol:
                return it
            self.V -= self.lr * dV
            self.W -= self.lr * dW
        return max_iter


def load(cfg: DictConfig, rng):
    if cfg.data.name == "tiny":  # 2 samples, 4 inputs -> 4 outputs: learnable
        X = np.array([[0.1, 0.9, 0.2, 0.8], [0.9, 0.1, 0.8, 0.2]])
        return X, X[:, ::-1].copy()
    return rng.random((cfg.data.n, 7)), rng.random((cfg.data.n, 2))  # nothing to learn


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    rng = np.random.default_rng(cfg.seed)
    X, Y = load(cfg, rng)
    net = Backprop(X.shape[1], cfg.hidden, Y.shape[1], cfg.lr, rng)
    iters = net.fit(X, Y, cfg.tol, cfg.max_iter, cfg.log_every)
    E = net.forward(X) - Y
    out = {"iterations": iters, "mae": float(np.mean(np.abs(E))), "sse": float(np.sum(E ** 2))}
    mlflow.log_metrics({f"final/{k}": v for k, v in out.items()})
    print(f"tol={cfg.tol:g} data={cfg.data.name}: {iters} iterations, "
          f"MAE {out['mae']:.4f}, SSE {out['sse']:.4f}")
    return out


if __name__ == "__main__":
    main()
