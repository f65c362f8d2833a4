"""A training script that knows nothing of nets: it logs to MLflow like a Keras callback.

A softmax regression on scikit-learn's 8x8 digits, trained by plain numpy gradient
descent, logged with the fluent MLflow API under Keras' metric names (``loss``,
``accuracy``, ``val_loss``, ``val_acc``), one point per epoch. Then::

    nets-diagnose RUN_ID --key train/loss=loss --key val/loss=val_loss \
        --key train/accuracy=accuracy --key val/accuracy=val_acc

prints nets' verdict for it and writes it to the run. See README.md next to this file.

Usage: python log_with_mlflow.py [--uri URI] [--lr LR] [--epochs N]; prints the run id.
"""

import argparse
import os

import mlflow
import numpy as np
from sklearn.datasets import load_digits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--uri", default="sqlite:///" + os.path.abspath("mlruns/mlflow.db"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=30)
    args = p.parse_args()
    os.makedirs("mlruns", exist_ok=True)
    mlflow.set_tracking_uri(args.uri)
    mlflow.set_experiment("plain-mlflow")

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    X, y = X[order], y[order]
    Xt, yt, Xv, yv = X[:1400], y[:1400], X[1400:], y[1400:]
    W, b = np.zeros((64, 10)), np.zeros(10)
    T = np.eye(10)[yt]

    def evaluate(Xs, ys):
        Z = Xs @ W + b
        Z -= Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        return float(-np.mean(np.log(P[np.arange(len(ys)), ys]))), float(np.mean(P.argmax(1) == ys)), P

    with mlflow.start_run(run_name=f"softmax-lr{args.lr:g}") as run:
        mlflow.log_params({"lr": args.lr, "epochs": args.epochs})
        for epoch in range(args.epochs + 1):
            loss, acc, P = evaluate(Xt, yt)
            val_loss, val_acc, _ = evaluate(Xv, yv)
            mlflow.log_metrics({"loss": loss, "accuracy": acc, "val_loss": val_loss,
                                "val_acc": val_acc}, step=epoch)
            G = (P - T) / len(Xt)
            W -= args.lr * Xt.T @ G
            b -= args.lr * G.sum(axis=0)
        print(run.info.run_id)


if __name__ == "__main__":
    main()
