"""Seconds per training epoch of a small CNN: nets vs a naive im2col numpy vs PyTorch CPU.

Network (MNIST-sized input 1x28x28, 10 classes, padding-1 3x3 convolutions, ReLU):
conv(8)-pool2-conv(16)-pool2-conv(32)-flatten-dense(10), softmax cross-entropy, plain
SGD, batch 64, 10,000 random float32 samples. Each contender warms up on ten batches,
then the best of ``--repeats`` epochs is reported; the contenders take turns epoch by
epoch, so each sees the same machine. Target: nets <= 1.5x PyTorch.

Rows: ``nets`` trains through ``model.forward/backward`` as nets does (back-propagation
stops at the first convolution, whose input gradient nothing needs: PyTorch skips it
too); ``naive im2col`` is the textbook numpy version written below; ``pytorch`` the same
network in PyTorch.

Run: ``python tests/benchmarks/bench_cnn.py [--repeats 5] [--samples 10000]``.
PyTorch is optional (``pip install torch``; never a dependency of nets).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

TARGET = 1.5
LR = 0.01
CONVS = (8, 16, 32)


# ---------------------------------------------------------------------------- nets
def nets_model(rng):
    """The network built from the ``cnn`` model spec, or assembled layer by layer with
    ``LAYERS`` if ``nets.models`` cannot build it. Returns ``(model or None, layers, how)``."""
    import nets.convolutions  # noqa: F401  (registers conv2d and max_pool2d)
    try:
        from nets.models import build_model
        spec = {"name": "cnn", "conv": [{"channels": c, "kernel": 3, "stride": 1,
                                         "padding": 1, "pool": 2 if i < 2 else 1}
                                        for i, c in enumerate(CONVS)],
                "hidden": [], "activation": "relu", "output": "softmax"}
        model = build_model(spec, in_shape=(784,), n_out=10, rng=rng, dtype=np.float32,
                            image_shape=(1, 28, 28))
        return model, model.net, "nets.models.build_model(cnn)"
    except Exception as e:  # a module written concurrently may not import yet
        print(f"  (build_model failed: {type(e).__name__}: {e}; assembling layers)")
    from nets.layers import LAYERS
    specs = [{"name": "image", "shape": [1, 28, 28]}]
    for i, c in enumerate(CONVS):
        specs += [{"name": "conv2d", "channels": c, "kernel": 3, "padding": 1},
                  {"name": "activation", "fn": "relu"}]
        if i < 2:
            specs.append({"name": "max_pool2d", "size": 2, "stride": 2})
    specs += [{"name": "flatten"}, {"name": "dense", "units": 10, "init": "he"}]
    layers, shape = [], (784,)
    for spec, child in zip(specs, rng.spawn(len(specs))):
        layer = LAYERS.build(spec)
        shape = layer.build(shape, child, np.float32)
        layers.append(layer)
    return None, layers, "LAYERS.build"


def softmax_xent_grad(Z, y):
    """``dL/dZ`` of the mean softmax cross-entropy."""
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(len(y)), y] -= 1
    P /= len(y)
    return P


def nets_epoch(model, layers, X, y, batch):
    """One SGD epoch through ``model.forward/backward``; without a model, through the
    layers in order, back-propagating (as ``Sequential`` does) only down to the first
    layer with parameters, which skips its input gradient."""
    params = [p for layer in layers for p in layer.params]
    first = next(i for i, layer in enumerate(layers) if layer.params)
    if model is None:
        layers[first].input_grad = False
    lr = X.dtype.type(LR)
    for i in range(0, len(X), batch):
        if model is not None:
            model.backward(softmax_xent_grad(model.forward(X[i:i + batch], training=True),
                                             y[i:i + batch]))
        else:
            A = X[i:i + batch]
            for layer in layers:
                A = layer.forward(A, training=True)
            dA = softmax_xent_grad(A, y[i:i + batch])
            for layer in reversed(layers[first:]):
                dA = layer.backward(dA)
        for p in params:
            p.value -= lr * p.grad


# --------------------------------------------------------------- naive im2col numpy
class NaiveCNN:
    """The textbook numpy CNN (NCHW, as in CS231n's ``im2col``): a Python loop over the
    kernel positions builds the ``(C*k*k, n*H*W)`` column matrix, backward scatters the
    column gradients back with ``np.add.at``, pooling keeps an ``X == max`` mask."""

    def __init__(self, rng, dtype=np.float32):
        self.convs = []
        c_in = 1
        for c in CONVS:
            W = rng.normal(0, np.sqrt(2 / (9 * c_in)), (c, c_in, 3, 3)).astype(dtype)
            self.convs.append([W, np.zeros(c, dtype)])
            c_in = c
        side = 28 // 4
        self.Wd = rng.normal(0, np.sqrt(2 / (c_in * side * side)),
                             (c_in * side * side, 10)).astype(dtype)
        self.bd = np.zeros(10, dtype)
        self._index = {}

    @staticmethod
    def im2col(Xp, k, H, W):
        n, C = Xp.shape[:2]
        cols = np.empty((C, k, k, n, H, W), dtype=Xp.dtype)
        for i in range(k):
            for j in range(k):
                cols[:, i, j] = Xp[:, :, i:i + H, j:j + W].transpose(1, 0, 2, 3)
        return cols.reshape(C * k * k, n * H * W)

    def col2im(self, dcols, shape, k):
        """Scatter-add of every column entry to its padded-input pixel."""
        n, C, H, W = shape
        Hp, Wp = H + 2, W + 2
        key = shape
        if key not in self._index:
            c, i, j, b, y, x = np.indices((C, k, k, n, H, W)).reshape(6, -1)
            self._index[key] = ((b * C + c) * Hp + y + i) * Wp + x + j
        dXp = np.zeros(n * C * Hp * Wp, dtype=dcols.dtype)
        np.add.at(dXp, self._index[key], dcols.ravel())
        return dXp.reshape(n, C, Hp, Wp)[:, :, 1:-1, 1:-1]

    def conv_forward(self, X, W, b):
        n, C, H, Wd = X.shape
        Xp = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)))
        cols = self.im2col(Xp, 3, H, Wd)
        Y = W.reshape(len(W), -1) @ cols + b[:, None]
        return Y.reshape(len(W), n, H, Wd).transpose(1, 0, 2, 3), cols

    def conv_backward(self, dY, X, W, cols):
        c_out = len(W)
        dY2 = dY.transpose(1, 0, 2, 3).reshape(c_out, -1)
        dW = (dY2 @ cols.T).reshape(W.shape)
        db = dY2.sum(axis=1)
        dcols = W.reshape(c_out, -1).T @ dY2
        return self.col2im(dcols, X.shape, 3), dW, db

    @staticmethod
    def pool_forward(X):
        n, C, H, W = X.shape
        X6 = X.reshape(n, C, H // 2, 2, W // 2, 2)
        Y = X6.max(axis=(3, 5))
        mask = X6 == Y[:, :, :, None, :, None]
        return Y, mask

    @staticmethod
    def pool_backward(dY, mask):
        n, C, H2, W2 = dY.shape
        return (mask * dY[:, :, :, None, :, None]).reshape(n, C, 2 * H2, 2 * W2)

    def step(self, X, y):
        A = X.reshape(len(X), 1, 28, 28)
        tape = []
        for li, (W, b) in enumerate(self.convs):
            Z, cols = self.conv_forward(A, W, b)
            R = np.maximum(Z, 0)
            mask = None
            out = R
            if li < 2:
                out, mask = self.pool_forward(R)
            tape.append((A, cols, R, mask))
            A = out
        F = A.reshape(len(A), -1)
        dZ = softmax_xent_grad(F @ self.Wd + self.bd, y)
        dWd, dbd = F.T @ dZ, dZ.sum(axis=0)
        dA = (dZ @ self.Wd.T).reshape(A.shape)
        self.Wd -= LR * dWd
        self.bd -= LR * dbd
        for li in reversed(range(len(self.convs))):
            Ain, cols, R, mask = tape[li]
            if mask is not None:
                dA = self.pool_backward(dA, mask)
            dA = dA * (R > 0)
            W, b = self.convs[li]
            dA, dW, db = self.conv_backward(dA, Ain, W, cols)
            W -= LR * dW
            b -= LR * db


def naive_epoch(net, X, y, batch):
    for i in range(0, len(X), batch):
        net.step(X[i:i + batch], y[i:i + batch])


# -------------------------------------------------------------------------- PyTorch
def torch_setup(seed):
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    return torch, net, opt


def torch_epoch(setup, X, y, batch):
    torch, net, opt = setup
    for i in range(0, len(X), batch):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(X[i:i + batch]), y[i:i + batch])
        loss.backward()
        opt.step()


# --------------------------------------------------------------------------- timing
def best_of(epochs: dict, repeats: int, warmup_batches=10, batch=64) -> dict:
    """Best time of each ``epoch(X, y)`` over ``repeats`` rounds, after a short warm-up
    (BLAS threads, allocator, first-call overheads). ``epochs``: name -> ``(epoch, X,
    y)``. The contenders take turns within each round, so a burst of other work on a
    shared machine slows one round of all of them, not every epoch of one."""
    for epoch, X, y in epochs.values():
        epoch(X[:warmup_batches * batch], y[:warmup_batches * batch])
    times: dict[str, list[float]] = {name: [] for name in epochs}
    for _ in range(repeats):
        for name, (epoch, X, y) in epochs.items():
            t = time.perf_counter()
            epoch(X, y)
            times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    X = rng.random((args.samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    print(f"CNN epoch: {args.samples} samples 1x28x28 float32, batch {args.batch}, "
          f"best of {args.repeats} (numpy {np.__version__})")

    model, layers, how = nets_model(np.random.default_rng(1))
    print(f"  nets built with {how}")
    b = args.batch
    epochs = {"nets": (lambda X, y: nets_epoch(model, layers, X, y, b), X, y)}
    if not args.skip_naive:
        net = NaiveCNN(np.random.default_rng(1))
        epochs["naive im2col"] = (lambda X, y: naive_epoch(net, X, y, b), X, y)
    setup = torch_setup(1)
    if setup is not None:
        torch = setup[0]
        Xt = torch.from_numpy(X.reshape(-1, 1, 28, 28))
        yt = torch.from_numpy(y)
        epochs[f"pytorch {torch.__version__} ({torch.get_num_threads()} threads)"] = \
            (lambda X, y: torch_epoch(setup, X, y, b), Xt, yt)
    else:
        print("  (PyTorch not importable: skipped)")
    results = best_of(epochs, args.repeats, batch=b)

    t_naive = results.get("naive im2col")
    t_torch = next((v for k, v in results.items() if k.startswith("pytorch")), None)
    width = max(len(k) for k in results)
    print(f"\n{'':{width}}  s/epoch  x pytorch  x naive")
    for k, v in results.items():
        vs_torch = f"{v / t_torch:9.2f}" if t_torch else f"{'-':>9}"
        vs_naive = f"{v / t_naive:7.2f}" if t_naive else f"{'-':>7}"
        print(f"{k:{width}}  {v:7.3f}  {vs_torch}  {vs_naive}")
    if t_torch is not None:
        ratio = results["nets"] / t_torch
        verdict = "meets" if ratio <= TARGET else "misses"
        print(f"\nnets / pytorch = {ratio:.2f}x: {verdict} the <= {TARGET}x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
