"""Central-difference gradient checks, parametrized over the registries.

Every registered activation, loss and layer is checked in float64 against
``gradcheck.numerical_grad`` with ``rel_error <= 1e-6``; a newly registered component is
picked up automatically (layers need an entry in ``LAYER_CASES``, which a test enforces).
Then whole networks (``gradcheck.check_model``), a demonstration that the check catches
story 1's backprop bugs, and one SGD step worked out by hand.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from nets import catalog, gradcheck  # noqa: F401 - catalog: every kind registered
from nets.activations import ACTIVATIONS
from nets.gradcheck import check_layer, check_model, numerical_grad, rel_error
from nets.layers import LAYERS
from nets.losses import LOSSES, REDUCTIONS
from nets.models import Head, build_model
from nets.optimizers import OPTIMIZERS
from nets.targets import TARGETS

# Convolution layers live in a module other helpers are writing; register them if it
# imports, so the layer checks below see them.
try:  # pragma: no cover - depends on the state of the tree
    importlib.import_module("nets.convolutions")
except Exception:  # noqa: BLE001 - missing or half-written module: check what exists
    pass

TOL = 1e-6


def _away_from_zero(rng, shape, low=0.1, high=2.0):
    """Values with ``low <= |z| <= high`` and random sign (keeps ReLU off its kink)."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


# --------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------

# Non-default hyperparameters worth checking as well (default spec is always checked).
ACTIVATION_VARIANTS = {
    "leaky_relu": [{"name": "leaky_relu", "alpha": 0.2}],
    "elu": [{"name": "elu", "alpha": 0.5}],
}


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_activation_gradient(name):
    rng = np.random.default_rng(0)
    for spec in [name] + ACTIVATION_VARIANTS.get(name, []):
        fn = ACTIVATIONS.build(spec)
        Z = _away_from_zero(rng, (6, 5))
        R = rng.standard_normal(Z.shape)  # covector: f(Z) = sum(A(Z) * R)
        A = fn.forward(Z)
        assert A.shape == Z.shape and A.dtype == np.float64, f"activation {spec}: shape/dtype"
        analytic = fn.backward(R, A)
        _, num = numerical_grad(lambda: float(np.sum(fn.forward(Z) * R)), Z)
        err = rel_error(analytic.reshape(-1), num)
        assert err <= TOL, f"activation {spec}: rel error {err:.3g} > {TOL}"


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_activation_finite_for_extreme_inputs(name):
    fn = ACTIVATIONS.build(name)
    Z = np.array([[-800.0, -30.0, 0.5, 30.0, 800.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        A = fn.forward(Z)
        dZ = fn.backward(np.ones_like(A), A)
    assert np.all(np.isfinite(A)) and np.all(np.isfinite(dZ)), f"activation {name}"


def test_softmax_rows_sum_to_one_and_backward_is_jvp():
    fn = ACTIVATIONS.build("softmax")
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((4, 3))
    A = fn.forward(Z)
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    dA = rng.standard_normal(A.shape)
    for i in range(len(Z)):  # full Jacobian diag(a) - a a^T, row by row
        J = np.diag(A[i]) - np.outer(A[i], A[i])
        np.testing.assert_allclose(fn.backward(dA[i:i + 1], A[i:i + 1])[0], J.T @ dA[i],
                                   rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------

def _targets_for(loss, rng, n, k):
    """Every valid target encoding of ``loss``: ``[(encoding, T), ...]``."""
    y = rng.integers(0, k, size=n)
    out = []
    for enc in loss.targets:
        if enc == "raw":
            T = rng.uniform(0.0, 1.0, size=(n, k))  # in [0, 1]: valid for bce as well
        else:
            T = TARGETS.build(enc).encode(y, k, np.float64)
        out.append((enc, T))
    assert out, f"loss {loss.name} declares no valid targets"
    return out


LOSS_CASES = [(name, red) for name in LOSSES.names() for red in REDUCTIONS]


@pytest.mark.parametrize("name,reduction", LOSS_CASES,
                         ids=[f"{n}-{r}" for n, r in LOSS_CASES])
def test_loss_gradient(name, reduction):
    rng = np.random.default_rng(2)
    loss = LOSSES.build(name)
    n, k = 7, 4
    for enc, T in _targets_for(loss, rng, n, k):
        # Fused losses take logits (any real); others take activations (any real is fine
        # for the derivative check).
        Y = rng.normal(0.0, 2.0 if loss.fused else 1.0, size=(n, k))
        analytic = loss.grad(Y, T, reduction)
        assert analytic.shape == Y.shape, f"loss {name}/{enc}: grad shape"
        _, num = numerical_grad(lambda: loss.value(Y, T, reduction), Y)
        err = rel_error(analytic.reshape(-1), num)
        assert err <= TOL, (f"loss {name} reduction={reduction} target={enc}: "
                            f"rel error {err:.3g} > {TOL}")


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_sum_is_n_times_mean(name):
    rng = np.random.default_rng(3)
    loss = LOSSES.build(name)
    n, k = 9, 3
    for enc, T in _targets_for(loss, rng, n, k):
        Y = rng.standard_normal((n, k))
        assert loss.value(Y, T, "sum") == pytest.approx(n * loss.value(Y, T, "mean"), rel=1e-12)
        np.testing.assert_allclose(loss.grad(Y, T, "sum"), n * loss.grad(Y, T, "mean"),
                                   rtol=1e-12, err_msg=f"loss {name}/{enc}")


def test_loss_values_match_textbook_formulas():
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((5, 3))
    T = rng.uniform(size=(5, 3))
    y = np.array([0, 2, 1, 1, 0])
    T1 = np.eye(3)[y]
    assert LOSSES.build("mse").value(Y, T) == pytest.approx(np.mean((Y - T) ** 2), rel=1e-12)
    assert LOSSES.build("sse").value(Y, T, "sum") == pytest.approx(np.sum((Y - T) ** 2), rel=1e-12)
    P = np.exp(Y) / np.exp(Y).sum(axis=1, keepdims=True)
    assert LOSSES.build("cross_entropy").value(Y, T1) == pytest.approx(
        -np.mean(np.log(P[np.arange(5), y])), rel=1e-12)
    p = 1 / (1 + np.exp(-Y))
    assert LOSSES.build("bce").value(Y, T) == pytest.approx(
        -np.mean(T * np.log(p) + (1 - T) * np.log(1 - p)), rel=1e-12)


@pytest.mark.parametrize("name", [n for n in LOSSES.names() if LOSSES[n].fused])
def test_fused_loss_finite_for_huge_logits(name):
    loss = LOSSES.build(name)
    Z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 5.0]])
    T = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        v, g = loss.value(Z, T), loss.grad(Z, T)
    assert np.isfinite(v) and np.all(np.isfinite(g)), f"loss {name}"


# --------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------

# One or more ``(spec, per-sample in_shape)`` per registered layer. A registered layer
# with no entry fails ``test_every_registered_component_is_covered``: add one here.
LAYER_CASES = {
    "dense": [({"name": "dense", "units": 3}, (5,)),
              ({"name": "dense", "units": 3, "bias_input": -1.0,
                "bias_init": {"name": "uniform", "scale": 0.5}}, (5,))],
    "activation": [({"name": "activation", "fn": a}, (5,)) for a in ACTIVATIONS.names()],
    "dropout": [({"name": "dropout", "rate": 0.3}, (5,))],
    "flatten": [({"name": "flatten"}, (3, 4, 2))],
    "image": [({"name": "image", "shape": [3, 2, 2]}, (12,))],
    # Image layers are channels-last (H, W, C); the conv helper's own tests go deeper.
    "conv2d": [({"name": "conv2d", "channels": 2, "kernel": 3, "stride": 1, "padding": 1},
                (5, 4, 3)),
               ({"name": "conv2d", "channels": 3, "kernel": 2, "stride": 2, "padding": 0},
                (6, 5, 2))],
    "max_pool2d": [({"name": "max_pool2d", "size": 2, "stride": 2}, (4, 6, 3))],
}


@pytest.mark.parametrize("name", LAYERS.names())
def test_layer_gradient(name):
    if name not in LAYER_CASES:
        pytest.fail(f"layer {name!r} is registered but has no entry in LAYER_CASES")
    for i, (spec, in_shape) in enumerate(LAYER_CASES[name]):
        rng = np.random.default_rng(10 + i)
        layer = LAYERS.build(spec)
        out_shape = layer.build(in_shape, np.random.default_rng(5), np.float64)
        X = _away_from_zero(rng, (4,) + tuple(in_shape))
        Y = layer.forward(X, training=False)
        assert Y.shape == (4,) + tuple(out_shape), f"layer {spec}: output shape"
        errs = check_layer(layer, X, rng)
        bad = {k: v for k, v in errs.items() if not v <= TOL}
        assert not bad, f"layer {spec} in_shape={in_shape}: rel errors {bad} > {TOL}"


def test_dropout_training_path_with_fixed_mask():
    rate = 0.4
    layer = LAYERS.build({"name": "dropout", "rate": rate})
    layer.build((6,), np.random.default_rng(0), np.float64)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 6))
    R = rng.standard_normal(X.shape)

    def forward():
        layer.rng = np.random.default_rng(123)  # same mask on every call
        return layer.forward(X, training=True)

    Y = forward()
    kept = Y != 0
    # Inverted dropout: survivors scaled by 1/(1-rate), evaluation is the identity.
    np.testing.assert_allclose(Y[kept], X[kept] / (1 - rate), rtol=1e-12)
    assert 0.4 < kept.mean() < 0.8
    assert layer.forward(X, training=False) is X or np.array_equal(layer.forward(X), X)
    forward()
    analytic = layer.backward(R.copy())
    _, num = numerical_grad(lambda: float(np.sum(forward() * R)), X)
    err = rel_error(analytic.reshape(-1), num)
    assert err <= TOL, f"dropout training path: rel error {err:.3g}"


def test_image_layer_layout():
    layer = LAYERS.build({"name": "image", "shape": [3, 2, 2]})
    assert layer.build((12,), np.random.default_rng(0), np.float64) == (2, 2, 3)
    X = np.arange(24.0).reshape(2, 12)
    Y = layer.forward(X)
    chw = X.reshape(2, 3, 2, 2)
    for c in range(3):
        np.testing.assert_array_equal(Y[..., c], chw[:, c])
    np.testing.assert_array_equal(layer.backward(Y), X)


def test_every_registered_component_is_covered():
    covered = {
        "activation": set(ACTIVATIONS.names()),  # parametrized over the registry itself
        "loss": {n for n, _ in LOSS_CASES},
        "layer": set(LAYER_CASES),
    }
    registries = {"activation": ACTIVATIONS, "loss": LOSSES, "layer": LAYERS}
    for kind, reg in registries.items():
        missing = sorted(set(reg.names()) - covered[kind])
        assert not missing, f"{kind}s without a gradient check: {missing}"
    for name in LOSSES.names():
        assert LOSSES[name].targets, f"loss {name} lists no valid targets to check"


# --------------------------------------------------------------------------------------
# Whole networks
# --------------------------------------------------------------------------------------

MODEL_CASES = {
    "sigmoid-sigmoid-mse": ({"name": "mlp", "hidden": [4, 3], "activation": "sigmoid",
                             "output": "sigmoid"}, "mse", "one_hot"),
    "tanh-tanh-sse": ({"name": "mlp", "hidden": [4], "activation": "tanh", "output": "tanh"},
                      "sse", "plus_minus_one"),
    "relu-softmax-ce": ({"name": "mlp", "hidden": [6, 5], "activation": "relu",
                         "output": "softmax", "bias_init": {"name": "constant", "value": 0.1}},
                        "cross_entropy", "one_hot"),
    "sigmoid-sigmoid-bce": ({"name": "mlp", "hidden": [4], "activation": "sigmoid",
                             "output": "sigmoid"}, "bce", "one_hot"),
    # Story 2: bias as a constant -1 input, U[0,1) weights, identity output, raw targets.
    "story2-bias-input-minus-one": ({"name": "mlp", "hidden": [3], "activation": "sigmoid",
                                     "output": "identity", "init": "uniform01",
                                     "bias_init": "uniform01", "bias_input": -1}, "sse", "raw"),
}


def _model_case(key, rng):
    spec, loss_name, enc = MODEL_CASES[key]
    n, d, k = 6, 5, 3
    model = build_model(spec, in_shape=(d,), n_out=k, rng=np.random.default_rng(7))
    X = rng.standard_normal((n, d))
    if enc == "raw":
        T = rng.uniform(size=(n, k))
    else:
        T = TARGETS.build(enc).encode(rng.integers(0, k, n), k, np.float64)
    return model, Head(model.output, LOSSES.build(loss_name)), X, T


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("key", list(MODEL_CASES))
def test_model_gradient(key, reduction):
    rng = np.random.default_rng(8)
    model, head, X, T = _model_case(key, rng)
    errs = check_model(model, head, X, T, reduction, max_entries=None, rng=rng)
    assert set(errs) == {name for name, _ in model.named_params()}
    bad = {k: v for k, v in errs.items() if not v <= TOL}
    assert not bad, f"model {key} reduction={reduction}: rel errors {bad} > {TOL}"


def test_bias_input_minus_one_flips_the_bias():
    model = build_model({"name": "mlp", "hidden": [], "output": "identity",
                         "bias_init": "uniform01", "bias_input": -1},
                        in_shape=(2,), n_out=2, rng=np.random.default_rng(0))
    dense = model.net[0]
    X = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(model.forward(X), X @ dense.W.value - dense.b.value)
    model.backward(np.ones((1, 2)))
    np.testing.assert_array_equal(dense.b.grad, [-1.0, -1.0])


# --------------------------------------------------------------------------------------
# Story 1: the check catches the hand-written backprop bugs
# --------------------------------------------------------------------------------------

def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _story1_net(rng):
    P = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(4),
         "W2": rng.standard_normal((4, 2)), "b2": rng.uniform(0.5, 1.5, 2)}
    X = rng.standard_normal((5, 3))
    T = np.eye(2)[rng.integers(0, 2, 5)]
    return P, X, T


def _story1_loss(P, X, T):
    H = _sig(X @ P["W1"] + P["b1"])
    Y = _sig(H @ P["W2"] + P["b2"])
    return 0.5 * np.sum((Y - T) ** 2)


def _story1_backprop(P, X, T, bias_bug=False, delta_bug=False, update_bug=False, lr=0.1):
    H = _sig(X @ P["W1"] + P["b1"])
    Y = _sig(H @ P["W2"] + P["b2"])
    delta_out = (Y - T) * Y * (1 - Y)
    g = {"W2": H.T @ delta_out, "b2": delta_out.sum(axis=0)}
    if bias_bug:  # story 1: output-bias gradient multiplied by the bias itself
        g["b2"] = g["b2"] * P["b2"]
    W_back = P["W2"]
    if update_bug:  # story 2: hidden delta through the weight *update*, not the weights
        W_back = lr * g["W2"]
    delta_hidden = delta_out @ W_back.T
    if not delta_bug:  # story 1's bug: this sigmoid derivative was skipped
        delta_hidden = delta_hidden * H * (1 - H)
    g["W1"] = X.T @ delta_hidden
    g["b1"] = delta_hidden.sum(axis=0)
    return g


def _story1_errors(**bugs):
    P, X, T = _story1_net(np.random.default_rng(11))
    g = _story1_backprop(P, X, T, **bugs)
    out = {}
    for k in P:
        _, num = numerical_grad(lambda: _story1_loss(P, X, T), P[k])
        out[k] = rel_error(g[k].reshape(-1), num)
    return out


def test_story1_correct_backprop_passes_the_check():
    errs = _story1_errors()
    assert max(errs.values()) < TOL, errs


def test_story1_bias_bug_is_caught():
    errs = _story1_errors(bias_bug=True)
    assert errs["b2"] > 1e-2, errs
    assert errs["W1"] < TOL and errs["W2"] < TOL  # the check points at the right array


def test_story1_missing_sigmoid_derivative_is_caught():
    errs = _story1_errors(delta_bug=True)
    assert errs["W1"] > 1e-2 and errs["b1"] > 1e-2, errs
    assert errs["W2"] < TOL and errs["b2"] < TOL


def test_story2_delta_through_weight_update_is_caught():
    errs = _story1_errors(update_bug=True)
    assert errs["W1"] > 1e-2 and errs["b1"] > 1e-2, errs


# --------------------------------------------------------------------------------------
# One SGD step worked out by hand
# --------------------------------------------------------------------------------------

def _sigmoid_scalar(z):
    return np.float64(1.0) / (np.float64(1.0) + np.exp(-np.float64(z)))


# Weights: w[i][j] from input i to hidden j; v[j] from hidden j to the output.
HAND = dict(w11=0.1, w12=0.2, w21=0.3, w22=0.4, b1=0.1, b2=-0.1, v1=0.5, v2=-0.6, c=0.2)
HAND_SAMPLES = [((1.0, 2.0), 1.0), ((0.5, -1.0), 0.0)]
HAND_LR = 0.5


def _hand_step():
    """2 inputs -> 2 sigmoid hidden -> 1 identity output, mse (mean over 2 samples), lr 0.5.

    Returns the loss before the step, the gradients and the weights after it.
    """
    w11, w12, w21, w22 = HAND["w11"], HAND["w12"], HAND["w21"], HAND["w22"]
    b1, b2, v1, v2, c = HAND["b1"], HAND["b2"], HAND["v1"], HAND["v2"], HAND["c"]
    grads = dict.fromkeys(HAND, 0.0)
    loss = 0.0
    for (x1, x2), t in HAND_SAMPLES:
        z1 = x1 * w11 + x2 * w21 + b1
        z2 = x1 * w12 + x2 * w22 + b2
        h1, h2 = _sigmoid_scalar(z1), _sigmoid_scalar(z2)
        y = h1 * v1 + h2 * v2 + c
        loss += (y - t) ** 2 / 2                # mean over n=2 samples, k=1 output
        dy = 2 * (y - t) / 2                    # dL/dy for this sample
        grads["v1"] += dy * h1
        grads["v2"] += dy * h2
        grads["c"] += dy
        dz1 = dy * v1 * h1 * (1 - h1)
        dz2 = dy * v2 * h2 * (1 - h2)
        grads["w11"] += x1 * dz1
        grads["w21"] += x2 * dz1
        grads["w12"] += x1 * dz2
        grads["w22"] += x2 * dz2
        grads["b1"] += dz1
        grads["b2"] += dz2
    new = {k: v - HAND_LR * grads[k] for k, v in HAND.items()}
    return loss, grads, new


def _as_nets_weights(h):
    return {"dense1.W": np.array([[h["w11"], h["w12"]], [h["w21"], h["w22"]]]),
            "dense1.b": np.array([h["b1"], h["b2"]]),
            "dense2.W": np.array([[h["v1"]], [h["v2"]]]),
            "dense2.b": np.array([h["c"]])}


HAND_MODEL = {"name": "sequential",
              "layers": [{"name": "dense", "units": 2},
                         {"name": "activation", "fn": "sigmoid"},
                         {"name": "dense", "units": 1}],
              "output": "identity"}


def _assert_weights(actual, expected):
    for k, v in _as_nets_weights(expected).items():
        np.testing.assert_allclose(actual[k], v, rtol=1e-12, atol=1e-15, err_msg=k)


def test_hand_worked_sgd_step():
    loss, grads, new = _hand_step()
    model = build_model(HAND_MODEL, in_shape=(2,), n_out=1, rng=np.random.default_rng(0))
    model.set_weights(_as_nets_weights(HAND))
    X = np.array([s[0] for s in HAND_SAMPLES])
    T = np.array([[s[1]] for s in HAND_SAMPLES])
    head = Head(model.output, LOSSES.build("mse"))
    value, dZ = head.value_and_grad(model.forward(X, training=True), T, "mean")
    model.backward(dZ)
    assert value == pytest.approx(loss, rel=1e-12)
    _assert_weights({k: p.grad for k, p in model.named_params()}, grads)
    OPTIMIZERS.build({"name": "sgd", "lr": HAND_LR}).step(model.params)
    _assert_weights(model.get_weights(), new)


def test_hand_worked_sgd_step_through_the_trainer():
    datasets = pytest.importorskip("nets.data", reason="nets.data not importable")
    train = pytest.importorskip("nets.train", reason="nets.train not importable")
    loss, _, new = _hand_step()
    X = np.array([s[0] for s in HAND_SAMPLES])
    Y = np.array([[s[1]] for s in HAND_SAMPLES])
    data = datasets.Data(X, Y, X, Y, "regression", None, None, "hand")
    run = train.build_run({"model": HAND_MODEL, "loss": "mse",
                           "optimizer": {"name": "sgd", "lr": HAND_LR},
                           "train": {"epochs": 1}}, data)
    run.model.set_weights(_as_nets_weights(HAND))
    res = run.trainer().run()
    assert res.steps == 1
    assert res.history["train/loss"][0] == pytest.approx(loss, rel=1e-12)
    _assert_weights(run.model.get_weights(), new)


def test_gradcheck_rel_error_definition():
    a = np.array([1.0, -2.0, 3.0])
    b = np.array([1.0, -2.0, 3.5])
    assert gradcheck.rel_error(a, b) == pytest.approx(0.5 / (3.0 + 3.5))
    assert gradcheck.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gradcheck.rel_error(np.array([]), np.array([])) == 0.0
