"""conv2d and max_pool2d: gradients, a loop reference, dtypes, config errors, round trip."""

from __future__ import annotations

import numpy as np
import pytest

import nets.convolutions  # noqa: F401  (registers conv2d and max_pool2d)
from nets.gradcheck import numerical_grad, rel_error
from nets.layers import LAYERS
from nets.registry import ConfigError

TOL = 1e-6


def _conv(in_shape, dtype=np.float64, seed=0, **spec):
    layer = LAYERS.build({"name": "conv2d", **spec})
    out_shape = layer.build(in_shape, np.random.default_rng(seed), dtype)
    # A non-zero bias, so the forward reference and db are not checked against zeros.
    layer.b.value[...] = np.random.default_rng(seed + 1).standard_normal(layer.b.value.shape)
    return layer, out_shape


def _pool(in_shape, dtype=np.float64, **spec):
    layer = LAYERS.build({"name": "max_pool2d", **spec})
    return layer, layer.build(in_shape, None, dtype)


def _distinct(rng, shape):
    """Distinct values (a random permutation, spread out), so every window max is unique
    by a margin far above the finite-difference step."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) / 7.0


def conv_reference(X, W, b, stride, padding):
    """Direct nested loops over output pixels: ``Y[n,y,x,o] = b[o] + sum Xp[...] W``."""
    n, H, Wd, C = X.shape
    k, _, _, c_out = W.shape
    Xp = np.pad(X, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    Ho = (H + 2 * padding - k) // stride + 1
    Wo = (Wd + 2 * padding - k) // stride + 1
    Y = np.empty((n, Ho, Wo, c_out))
    for s in range(n):
        for y in range(Ho):
            for x in range(Wo):
                for o in range(c_out):
                    patch = Xp[s, y * stride:y * stride + k, x * stride:x * stride + k, :]
                    Y[s, y, x, o] = b[o] + np.sum(patch * W[:, :, :, o])
    return Y


def pool_reference(X, size, stride):
    n, H, W, C = X.shape
    Ho, Wo = (H - size) // stride + 1, (W - size) // stride + 1
    Y = np.empty((n, Ho, Wo, C))
    for y in range(Ho):
        for x in range(Wo):
            Y[:, y, x] = X[:, y * stride:y * stride + size, x * stride:x * stride + size].max(
                axis=(1, 2))
    return Y


def grad_errors(layer, X, rng):
    """Relative errors of dX and of every parameter gradient, by central differences of
    ``sum(Y * R)`` for a fixed random covector ``R`` (so ``dY = R``)."""
    Y = layer.forward(X, training=True)
    R = rng.standard_normal(Y.shape)
    dX = layer.backward(R.copy())
    assert dX.shape == X.shape
    errs = {}
    analytic = {p.name: p.grad.copy() for p in layer.params}
    f = lambda: float(np.sum(layer.forward(X) * R))  # noqa: E731
    errs["X"] = rel_error(dX, numerical_grad(f, X)[1].reshape(X.shape))
    for p in layer.params:
        errs[p.name] = rel_error(analytic[p.name],
                                 numerical_grad(f, p.value)[1].reshape(p.value.shape))
    return errs


# (kernel, stride, padding, c_in, c_out, H, W): stride 1, 2 and 3, padding 0/1/2 (also
# padding >= kernel), 1x1 to 5x5 kernels, non-square inputs, inputs the stride does not
# tile; c_in <= 4 takes the transposed window matrix and col2im, c_in > 4 row windows
# and, at stride 1, the full correlation.
CONV_CASES = [
    (3, 1, 1, 1, 4, 7, 6),
    (3, 1, 1, 6, 4, 7, 6),
    (3, 1, 0, 4, 3, 6, 8),
    (3, 1, 0, 6, 3, 6, 8),
    (3, 1, 2, 5, 2, 5, 4),
    (3, 2, 1, 3, 3, 7, 8),
    (3, 2, 1, 6, 3, 7, 8),
    (3, 2, 0, 1, 3, 7, 8),
    (2, 2, 0, 5, 2, 6, 5),
    (5, 1, 2, 4, 2, 6, 7),
    (5, 1, 2, 5, 2, 6, 7),
    (3, 3, 2, 2, 3, 9, 7),
    (1, 1, 0, 4, 3, 4, 5),
    (1, 1, 0, 5, 3, 4, 5),
    (2, 1, 2, 5, 3, 3, 4),
    (2, 1, 2, 1, 3, 3, 4),
]


@pytest.mark.parametrize("kernel,stride,padding,c_in,c_out,H,W", CONV_CASES)
def test_conv2d_gradients(kernel, stride, padding, c_in, c_out, H, W):
    rng = np.random.default_rng(kernel * 100 + stride * 10 + padding)
    layer, _ = _conv((H, W, c_in), channels=c_out, kernel=kernel, stride=stride,
                     padding=padding)
    X = rng.standard_normal((2, H, W, c_in))
    errs = grad_errors(layer, X, rng)
    assert max(errs.values()) <= TOL, errs


@pytest.mark.parametrize("kernel,stride,padding,c_in,c_out,H,W", CONV_CASES)
def test_conv2d_matches_loop_reference(kernel, stride, padding, c_in, c_out, H, W):
    rng = np.random.default_rng(1)
    layer, out_shape = _conv((H, W, c_in), channels=c_out, kernel=kernel, stride=stride,
                             padding=padding)
    X = rng.standard_normal((3, H, W, c_in))
    Y = layer.forward(X)
    assert Y.shape == (3,) + out_shape
    np.testing.assert_allclose(Y, conv_reference(X, layer.W.value, layer.b.value, stride,
                                                 padding), rtol=1e-12, atol=1e-12)


def test_conv2d_is_cross_correlation_by_hand():
    # One 3x3 input, one 2x2 kernel, no padding: every output is worked out by hand.
    layer, out_shape = _conv((3, 3, 1), channels=1, kernel=2)
    layer.W.value[..., 0, 0] = [[1.0, 2.0], [3.0, 4.0]]
    layer.b.value[...] = 0.5
    X = np.arange(9.0).reshape(1, 3, 3, 1)  # [[0 1 2] [3 4 5] [6 7 8]]
    Y = layer.forward(X)[0, :, :, 0]
    # top-left: 0*1 + 1*2 + 3*3 + 4*4 + 0.5 = 27.5; each step right adds 10, down 30
    np.testing.assert_allclose(Y, [[27.5, 37.5], [57.5, 67.5]])
    assert out_shape == (2, 2, 1)


@pytest.mark.parametrize("size,stride,H,W", [
    (2, 2, 6, 8),     # the reshape fast path
    (2, 2, 5, 7),     # odd sizes: last row and column dropped (generic path)
    (3, 1, 6, 5),
    (2, 1, 5, 6),
    (3, 2, 7, 7),
    (3, None, 7, 6),  # stride defaults to size
])
def test_max_pool2d_gradients_and_reference(size, stride, H, W):
    rng = np.random.default_rng(size * 10 + (stride or 0))
    layer, out_shape = _pool((H, W, 3), size=size, stride=stride)
    X = _distinct(rng, (2, H, W, 3))
    Y = layer.forward(X)
    assert Y.shape == (2,) + out_shape
    np.testing.assert_array_equal(Y, pool_reference(X, size, stride or size))
    errs = grad_errors(layer, X, rng)
    assert errs["X"] <= TOL, errs


@pytest.mark.parametrize("stride,H", [(2, 4), (2, 5), (1, 4)])
def test_max_pool2d_tie_sends_gradient_to_one_element(stride, H):
    # All-zero windows (ReLU output) tie everywhere; each window's gradient must land on
    # exactly one element, the first in column-major window order.
    layer, (Ho, Wo, _) = _pool((H, 4, 1), size=2, stride=stride)
    X = np.zeros((1, H, 4, 1))
    X[0, 0, 1, 0] = X[0, 1, 0, 0] = 1.0  # first window: tie between (0,1) and (1,0)
    layer.forward(X)
    dY = np.zeros((1, Ho, Wo, 1))
    dY[0, 0, 0, 0] = 1.0
    dX = layer.backward(dY)[0, :, :, 0]
    assert dX[1, 0] == 1 and np.count_nonzero(dX) == 1  # (1,0) precedes (0,1) by columns
    layer.forward(X)
    dX = layer.backward(np.ones((1, Ho, Wo, 1)))
    assert dX.sum() == Ho * Wo
    if stride == 2:  # disjoint windows: one element each
        assert np.count_nonzero(dX) == Ho * Wo


def test_max_pool2d_fast_path_matches_generic_path():
    rng = np.random.default_rng(3)
    X = np.maximum(rng.standard_normal((4, 8, 6, 5)), 0)  # many ties at zero
    fast, _ = _pool((8, 6, 5), size=2, stride=2)
    generic, _ = _pool((8, 6, 5), size=2, stride=2)
    generic._halves = False
    assert fast._halves
    dY = rng.standard_normal((4, 4, 3, 5))
    np.testing.assert_array_equal(fast.forward(X), generic.forward(X))
    np.testing.assert_array_equal(fast.backward(dY), generic.backward(dY))


@pytest.mark.parametrize("c_in", [1, 5])
def test_float32_stays_float32(c_in):
    rng = np.random.default_rng(0)
    conv, _ = _conv((8, 8, c_in), dtype=np.float32, channels=4, kernel=3, padding=1)
    pool, _ = _pool((8, 8, 4), dtype=np.float32, size=2)
    X = rng.standard_normal((2, 8, 8, c_in)).astype(np.float32)
    Y = pool.forward(conv.forward(X, training=True), training=True)
    assert Y.dtype == np.float32
    dX = conv.backward(pool.backward(np.ones_like(Y)))
    assert dX.dtype == np.float32
    assert conv.W.grad.dtype == np.float32 and conv.b.grad.dtype == np.float32
    # and the float32 result is the float64 one, to float32 precision
    conv64, _ = _conv((8, 8, c_in), channels=4, kernel=3, padding=1)
    conv64.W.value[...] = conv.W.value
    conv64.b.value[...] = conv.b.value
    np.testing.assert_allclose(conv.forward(X), conv64.forward(X.astype(np.float64)),
                               rtol=1e-5, atol=1e-5)
    # float64 weights do not upcast float32 data
    Y = conv64.forward(X, training=True)
    assert Y.dtype == np.float32 and conv64.backward(np.ones_like(Y)).dtype == np.float32


def test_grads_are_filled_in_place():
    # Optimizers hold references to p.grad: backward must not replace the arrays.
    layer, _ = _conv((6, 6, 2), channels=3, kernel=3, padding=1)
    grads = [p.grad for p in layer.params]
    X = np.random.default_rng(0).standard_normal((2, 6, 6, 2))
    layer.backward(np.ones_like(layer.forward(X)))
    assert all(p.grad is g for p, g in zip(layer.params, grads))
    assert all(np.any(g != 0) for g in grads)


def test_input_grad_off_skips_dx_but_fills_param_grads():
    rng = np.random.default_rng(0)
    layer, _ = _conv((6, 6, 1), channels=3, kernel=3, padding=1)
    X = rng.standard_normal((2, 6, 6, 1))
    dY = rng.standard_normal((2, 6, 6, 3))
    layer.forward(X)
    layer.backward(dY)
    dW, db = layer.W.grad.copy(), layer.b.grad.copy()
    layer.input_grad = False
    layer.forward(X)
    assert layer.backward(dY) is None
    np.testing.assert_array_equal(layer.W.grad, dW)
    np.testing.assert_array_equal(layer.b.grad, db)


def test_kernel_and_fan_shapes():
    layer, out_shape = _conv((28, 28, 1), channels=8, kernel=3, padding=1)
    assert layer.W.value.shape == (3, 3, 1, 8) and layer.b.value.shape == (8,)
    assert out_shape == (28, 28, 8)
    assert layer.W.decay and not layer.b.decay
    assert np.all(layer.b.value != 0)  # (set by _conv; the default init is zeros)
    fresh = LAYERS.build({"name": "conv2d", "channels": 8, "kernel": 3})
    fresh.build((28, 28, 1), np.random.default_rng(0), np.float64)
    assert np.all(fresh.b.value == 0)
    # he: std = sqrt(2 / fan_in), fan_in = 3*3*1
    big = LAYERS.build({"name": "conv2d", "channels": 512, "kernel": 3})
    big.build((5, 5, 4), np.random.default_rng(0), np.float64)
    assert big.W.value.std() == pytest.approx(np.sqrt(2 / 36), rel=0.05)


@pytest.mark.parametrize("spec,key", [
    ({"name": "conv2d", "channels": 4, "kernel": 0}, "kernel"),
    ({"name": "conv2d", "channels": 4, "kernel": 2.5}, "kernel"),
    ({"name": "conv2d", "channels": 4, "kernel": 3, "stride": 0}, "stride"),
    ({"name": "conv2d", "channels": 4, "kernel": 3, "padding": -1}, "padding"),
    ({"name": "conv2d", "channels": 0, "kernel": 3}, "channels"),
    ({"name": "conv2d", "channels": 4, "kernel": 3, "init": "nope"}, "init"),
    ({"name": "max_pool2d", "size": 0}, "size"),
    ({"name": "max_pool2d", "size": 2, "stride": 0}, "stride"),
    ({"name": "max_pool2d", "size": True}, "size"),
])
def test_bad_arguments_name_the_key(spec, key):
    with pytest.raises(ConfigError) as e:
        LAYERS.build(spec)
    assert key in e.value.key.split("."), str(e.value)
    assert key in str(e.value)


@pytest.mark.parametrize("spec,in_shape,key", [
    ({"name": "conv2d", "channels": 2, "kernel": 5, "padding": 1}, (2, 6, 1), "kernel"),
    ({"name": "conv2d", "channels": 2, "kernel": 7}, (6, 6, 1), "kernel"),
    ({"name": "conv2d", "channels": 2, "kernel": 3}, (16,), "in_shape"),
    ({"name": "max_pool2d", "size": 3}, (2, 8, 1), "size"),
    ({"name": "max_pool2d", "size": 2}, (16,), "in_shape"),
])
def test_bad_shapes_raise_at_build(spec, in_shape, key):
    layer = LAYERS.build(spec)
    with pytest.raises(ConfigError) as e:
        layer.build(in_shape, np.random.default_rng(0), np.float64)
    assert e.value.key == key, str(e.value)


def test_kernel_that_just_fits_the_padded_input_builds():
    layer, out_shape = _conv((2, 6, 1), channels=2, kernel=4, padding=1)
    assert out_shape == (1, 5, 2)


@pytest.mark.parametrize("spec", [
    {"name": "conv2d", "channels": 6, "kernel": 5, "stride": 2, "padding": 1,
     "init": {"name": "xavier", "distribution": "normal"}, "bias_init": "zeros"},
    {"name": "conv2d", "channels": 3, "kernel": 3},
    {"name": "max_pool2d", "size": 3, "stride": 1},
    {"name": "max_pool2d", "size": 2},
])
def test_hparams_round_trip(spec):
    layer = LAYERS.build(spec)
    again = LAYERS.build(layer.hparams())
    assert again.hparams() == layer.hparams()
    assert type(again) is type(layer)
    for k in ("channels", "kernel", "stride", "padding", "size"):
        if k in spec:
            assert layer.hparams()[k] == spec[k]


def test_cnn_model_gradient():
    # image -> conv(stride 1) -> tanh -> pool -> conv(stride 2) -> tanh -> flatten -> dense,
    # through the cnn model and a softmax cross-entropy head (tanh: no ReLU kinks).
    from nets.gradcheck import check_model
    from nets.losses import LOSSES
    from nets.models import Head, build_model

    spec = {"name": "cnn", "activation": "tanh", "output": "softmax", "hidden": [5],
            "conv": [{"channels": 3, "kernel": 3, "stride": 1, "padding": 1, "pool": 2},
                     {"channels": 4, "kernel": 2, "stride": 2, "padding": 1}]}
    model = build_model(spec, in_shape=(2 * 8 * 6,), n_out=3, rng=np.random.default_rng(0),
                        image_shape=(2, 8, 6))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4, 2 * 8 * 6))
    T = np.eye(3)[rng.integers(0, 3, 4)]
    errs = check_model(model, Head(model.output, LOSSES.build("cross_entropy")), X, T,
                       max_entries=None, rng=rng)
    assert {k.split(".")[0] for k in errs} >= {"conv2d1", "conv2d2", "dense1", "dense2"}
    assert max(errs.values()) <= TOL, errs
