"""MLP epoch speed and memory: nets vs a plain numpy loop vs PyTorch CPU, in one run.

Work: one epoch of an MLP 784-256-128-10, tanh hidden units, softmax cross-entropy,
mini-batches of 128, plain SGD, 60,000 random float32 samples (shuffled each epoch).
Targets (issue 2): nets <= 1.10x the plain numpy loop and <= 0.70x PyTorch; peak memory
while training <= dataset size + 200 MB.

    python tests/benchmarks/bench_mlp.py [--repeats 5]

PyTorch is optional (``pip install torch==2.13.0``); it is never a dependency of nets.
Memory is measured in a fresh child process per contender (peak RSS minus the RSS
after the dataset was created), so the contenders do not inflate each other's peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

N, D, H1, H2, K, BS, LR = 60_000, 784, 256, 128, 10, 128, 0.01


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((N, D), dtype=np.float32)
    y = rng.integers(0, K, N)
    return X, y


# -- plain numpy reference: what a careful user writes by hand ------------------------

def numpy_setup(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(D, H1), (H1, H2), (H2, K)]
    Ws = [(rng.standard_normal(s) * np.sqrt(1.0 / s[0])).astype(np.float32) for s in shapes]
    bs = [np.zeros(s[1], np.float32) for s in shapes]
    return Ws, bs


def numpy_epoch(X, y, Ws, bs, rng):
    T_all = np.eye(K, dtype=np.float32)[y]
    order = rng.permutation(len(X))
    (W1, W2, W3), (b1, b2, b3) = Ws, bs
    for i in range(0, len(X) - BS + 1, BS):
        idx = order[i:i + BS]
        x, t = X[idx], T_all[idx]
        a1 = np.tanh(x @ W1 + b1)
        a2 = np.tanh(a1 @ W2 + b2)
        z = a2 @ W3 + b3
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        dz = (p - t) / BS
        dW3, db3 = a2.T @ dz, dz.sum(0)
        da2 = dz @ W3.T * (1 - a2 * a2)
        dW2, db2 = a1.T @ da2, da2.sum(0)
        da1 = da2 @ W2.T * (1 - a1 * a1)
        dW1, db1 = x.T @ da1, da1.sum(0)
        for P, G in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2), (W3, dW3), (b3, db3)):
            P -= LR * G


# -- nets --------------------------------------------------------------------------

def nets_trainer(X, y, seed=0):
    from nets.data import Data
    from nets.train import build_run

    data = Data(X, y, X[:1000], y[:1000], "classification", K, None, "random")
    cfg = {"seed": seed, "model": {"name": "mlp", "hidden": [H1, H2], "activation": "tanh",
                                   "output": "softmax"},
           "loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": LR},
           "train": {"epochs": 1, "batch_size": BS, "dtype": "float32"}}
    trainer = build_run(cfg, data=data).trainer()
    trainer.start()
    return trainer


# -- PyTorch -----------------------------------------------------------------------

def torch_setup(seed=0):
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(D, H1), torch.nn.Tanh(), torch.nn.Linear(H1, H2),
                                torch.nn.Tanh(), torch.nn.Linear(H2, K))
    return model, torch.optim.SGD(model.parameters(), lr=LR)


def torch_epoch(Xt, yt, model, opt, g):
    import torch

    order = torch.randperm(len(Xt), generator=g)
    lossf = torch.nn.CrossEntropyLoss()
    for i in range(0, len(Xt) - BS + 1, BS):
        idx = order[i:i + BS]
        opt.zero_grad(set_to_none=False)
        lossf(model(Xt[idx]), yt[idx]).backward()
        opt.step()


# -- measurement -------------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(which: str, repeats: int) -> dict:
    """Run in this process: time ``repeats`` epochs (after one warm-up) and the memory."""
    X, y = make_data()
    base = rss_mb()
    data_mb = (X.nbytes + y.nbytes) / 2**20
    if which == "numpy":
        Ws, bs = numpy_setup()
        rng = np.random.default_rng(1)
        run = lambda: numpy_epoch(X, y, Ws, bs, rng)  # noqa: E731
    elif which == "nets":
        tr = nets_trainer(X, y)
        run = tr.train_epoch
    else:
        import torch

        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        model, opt = torch_setup()
        g = torch.Generator().manual_seed(1)
        run = lambda: torch_epoch(Xt, yt, model, opt, g)  # noqa: E731
    run()  # warm-up: first-touch allocations, BLAS thread start
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return {"which": which, "best": min(times), "median": float(np.median(times)),
            "data_mb": data_mb, "extra_mb": peak_mb() - base, "rss0_mb": base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeats)))
        return
    try:
        import torch  # noqa: F401
        contenders = ["numpy", "nets", "torch"]
    except ImportError:
        contenders = ["numpy", "nets"]
        print("PyTorch not installed: `pip install torch==2.13.0` to compare against it.")
    res = {}
    for c in contenders:
        out = subprocess.run([sys.executable, __file__, "--child", c, "--repeats", str(args.repeats)],
                             capture_output=True, text=True, check=True)
        res[c] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"MLP {D}-{H1}-{H2}-{K} tanh, softmax CE, batch {BS}, {N:,} float32 samples; "
          f"best of {args.repeats} epochs\n")
    print(f"{'contender':<10}{'best s':>9}{'median s':>10}{'peak - data-start MB':>22}")
    for c, r in res.items():
        print(f"{c:<10}{r['best']:>9.3f}{r['median']:>10.3f}{r['extra_mb']:>22.1f}")
    n, p = res["nets"], res["numpy"]
    print(f"\nnets / plain numpy = {n['best'] / p['best']:.2f}x   (target <= 1.10x)")
    if "torch" in res:
        print(f"nets / PyTorch     = {n['best'] / res['torch']['best']:.2f}x   (target <= 0.70x)")
    print(f"nets peak memory above the process with its dataset ({n['data_mb']:.0f} MB data): "
          f"{n['extra_mb']:.1f} MB   (target <= 200 MB)")


if __name__ == "__main__":
    main()
