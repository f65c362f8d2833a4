"""Convolution and pooling layers on channels-last images ``(n, H, W, C)``.

Importing this module registers ``conv2d`` and ``max_pool2d`` in ``LAYERS``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from nets.initializers import INITIALIZERS
from nets.layers import LAYERS, Layer, Param
from nets.registry import check, is_int


def _windows(X: np.ndarray, k: int, s: int, Ho: int, Wo: int) -> np.ndarray:
    """Read-only view ``(n, Ho, Wo, k, k, C)`` of the ``k x k`` windows of ``X``, stride ``s``."""
    sn, sh, sw, sc = X.strides
    return as_strided(X, (X.shape[0], Ho, Wo, k, k, X.shape[3]),
                      (sn, s * sh, s * sw, sh, sw, sc), writeable=False)


def _out_size(size: int, k: int, s: int, p: int = 0) -> int:
    return (size + 2 * p - k) // s + 1


@LAYERS.register("conv2d")
class Conv2D(Layer):
    """2-D cross-correlation (PyTorch's ``Conv2d``) with zero padding.

    ``Y[n, y, x, o] = b[o] + sum_{i, j, c} Xp[n, s*y + i, s*x + j, c] W[i, j, c, o]``,
    ``Xp`` being ``X`` zero-padded by ``padding`` on each side.

    Parameters
    ----------
    channels : int
        Output channels ``c_out`` (> 0).
    kernel : int
        Side ``k`` of the square kernel (> 0).
    stride : int
        Step ``s`` between windows (> 0).
    padding : int
        Zeros added on each side of both spatial axes (>= 0).
    init, bias_init : spec
        Kernel and bias initializers (``INITIALIZERS``), with
        ``fan_in = k*k*c_in`` and ``fan_out = k*k*c_out``.

    Shapes: ``X (n, H, W, c_in)``, ``W (k, k, c_in, c_out)``, ``b (c_out,)``,
    ``Y (n, Ho, Wo, c_out)`` with ``Ho = (H + 2*padding - k) // s + 1``.

    Forward is one GEMM ``Y = [cols | 1] [W; b]``, ``cols`` the ``(n*Ho*Wo, k*k*c_in)``
    matrix of windows (im2col); the column of ones carries the bias, so backward's
    ``[dW; db] = [cols | 1]^T dY`` is one GEMM too. ``dX`` at stride 1 is the full
    correlation of ``dY`` with the kernel flipped in space and transposed in channels
    (another im2col and GEMM, no scatter); otherwise ``dY W^T`` is added back window by
    window (col2im). With ``input_grad`` False (a model's first layer) ``dX`` is skipped.
    """

    def __init__(self, channels: int = 8, kernel: int = 3, stride: int = 1, padding: int = 0,
                 init="he", bias_init="zeros"):
        check(is_int(channels, 1), "channels", channels, "must be a positive integer")
        check(is_int(kernel, 1), "kernel", kernel, "must be a positive integer")
        check(is_int(stride, 1), "stride", stride, "must be a positive integer")
        check(is_int(padding, 0), "padding", padding, "must be an integer >= 0")
        self.channels, self.kernel = int(channels), int(kernel)
        self.stride, self.padding = int(stride), int(padding)
        self.init = INITIALIZERS.build(init, key="init")
        self.bias_init = INITIALIZERS.build(bias_init, key="bias_init")

    def build(self, in_shape, rng, dtype):
        check(len(in_shape) == 3, "in_shape", tuple(in_shape),
              "conv2d needs image input (H, W, C); put an image layer first")
        H, W, C = (int(d) for d in in_shape)
        k, s, p, Co = self.kernel, self.stride, self.padding, self.channels
        check(k <= min(H, W) + 2 * p, "kernel", k,
              f"must fit in the padded input {H + 2 * p}x{W + 2 * p} "
              f"(input {H}x{W}, padding {p})")
        self.in_shape = (H, W, C)
        self.out_hw = (_out_size(H, k, s, p), _out_size(W, k, s, p))
        fan_in, fan_out = k * k * C, k * k * Co
        self.W = Param("W", self.init((k, k, C, Co), fan_in, fan_out, rng, dtype), True)
        self.b = Param("b", self.bias_init((Co,), fan_in, fan_out, rng, dtype), False)
        self.params = [self.W, self.b]
        # Copying windows with C innermost runs one tiny inner loop per pixel when C is
        # small (a first layer's grey, RGB or RGBA input), so there the window matrix is
        # built transposed, (k*k*C, n*Ho*Wo), a row of output pixels at a time (measured
        # faster forward and backward up to C = 4, slower from C = 8).
        self._transposed = C <= 4
        self.cols = self.Xp = None
        return self.out_hw + (Co,)

    @staticmethod
    def _padded(X, pad):
        """``X`` with ``pad`` zeros on each side of both spatial axes."""
        if pad == 0:
            return X
        n, H, W, C = X.shape
        Xp = np.zeros((n, H + 2 * pad, W + 2 * pad, C), dtype=X.dtype)
        Xp[:, pad:pad + H, pad:pad + W] = X
        return Xp

    def forward(self, X, training=False):
        n, (Ho, Wo), Co = len(X), self.out_hw, self.channels
        K = self.kernel ** 2 * self.in_shape[2]
        self.cols = None  # let the previous batch's windows go before taking new ones
        if X.dtype.kind != "f":  # integer pixels: compute in the weights' dtype
            X = X.astype(self.W.value.dtype)
        Xp = self._padded(X, self.padding)
        cols = self._im2col(Xp)
        # Training keeps the windows for dW. Evaluation (large batches) keeps only the
        # padded input, k*k times smaller, and a backward after it rebuilds them.
        self.cols, self.Xp = (cols, None) if training else (None, Xp)
        Wb = np.concatenate([self.W.value.reshape(K, Co), self.b.value[None]])
        return (cols @ Wb.astype(X.dtype, copy=False)).reshape(n, Ho, Wo, Co)

    def backward(self, dY):
        n, K, Co = len(dY), self.kernel ** 2 * self.in_shape[2], self.channels
        dY2 = np.ascontiguousarray(dY).reshape(-1, Co)
        cols = self.cols if self.cols is not None else self._im2col(self.Xp)
        self.cols = self.Xp = None
        dWb = cols.T @ dY2
        del cols  # free the windows before dX takes its own
        self.W.grad.reshape(K, Co)[...] = dWb[:K]
        self.b.grad[...] = dWb[K]
        if not self.input_grad:
            return None
        if self.stride == 1 and not self._transposed:
            return self._full_correlation(dY)
        return self._col2im(dY2, n)

    def _im2col(self, Xp):
        """``[cols | 1]``, ``(n*Ho*Wo, k*k*c_in + 1)``: row ``(n, y, x)`` holds the window
        ``Xp[n, s*y:s*y+k, s*x:s*x+k, :]`` flattened in ``W``'s ``(i, j, c)`` order."""
        n, k, s, C = len(Xp), self.kernel, self.stride, self.in_shape[2]
        Ho, Wo = self.out_hw
        K, L = k * k * C, n * Ho * Wo
        if self._transposed:
            colsT = np.empty((K + 1, L), dtype=Xp.dtype)
            colsT[K] = 1
            blocks = colsT[:K].reshape(k, k, C, n, Ho, Wo)
            for i in range(k):
                for j in range(k):
                    blocks[i, j] = Xp[:, i:i + s * (Ho - 1) + 1:s,
                                      j:j + s * (Wo - 1) + 1:s].transpose(3, 0, 1, 2)
            return colsT.T
        cols = np.empty((L, K + 1), dtype=Xp.dtype)
        cols[:, K] = 1
        np.copyto(cols[:, :K].reshape(n, Ho, Wo, k, k, C), _windows(Xp, k, s, Ho, Wo))
        return cols

    def _full_correlation(self, dY):
        """Stride 1: ``dX = correlation of dY, zero-padded by k-1-p, with W[::-1, ::-1]
        transposed in channels``, one im2col and GEMM."""
        n = len(dY)
        k, p, Co = self.kernel, self.padding, self.channels
        H, W, C = self.in_shape
        q = k - 1 - p
        # p > k - 1: the outer p - (k-1) rings of dY see only padding, never X
        dYq = self._padded(dY, q) if q >= 0 else dY[:, -q:q, -q:q]
        cols = _windows(dYq, k, 1, H, W).reshape(n * H * W, k * k * Co)
        Wf = self.W.value[::-1, ::-1].transpose(0, 1, 3, 2).reshape(k * k * Co, C)
        return (cols @ Wf.astype(dY.dtype, copy=False)).reshape(n, H, W, C)

    def _col2im(self, dY2, n):
        """Any stride: ``dcols = dY W^T``, each window's share added back in place."""
        k, s, p, Co = self.kernel, self.stride, self.padding, self.channels
        H, W, C = self.in_shape
        Ho, Wo = self.out_hw
        W2 = self.W.value.reshape(k * k * C, Co).astype(dY2.dtype, copy=False)
        dXp = np.zeros((n, H + 2 * p, W + 2 * p, C), dtype=dY2.dtype)
        if self._transposed:
            dcols = (W2 @ dY2.T).reshape(k, k, C, n, Ho, Wo).transpose(0, 1, 3, 4, 5, 2)
        else:
            dcols = (dY2 @ W2.T).reshape(n, Ho, Wo, k, k, C).transpose(3, 4, 0, 1, 2, 5)
        for i in range(k):
            for j in range(k):
                dXp[:, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s] += dcols[i, j]
        return dXp[:, p:p + H, p:p + W]


@LAYERS.register("max_pool2d")
class MaxPool2D(Layer):
    """Max over ``size x size`` windows at stride ``stride``, per channel.

    ``Y[n, y, x, c] = max_{i, j < size} X[n, s*y + i, s*x + j, c]``; backward sends each
    ``dY`` entry to its window's maximum. On a tie exactly one element gets it: the first
    in column-major window order (the left column first, then the top row).

    Parameters
    ----------
    size : int
        Window side (> 0).
    stride : int, optional
        Step between windows (> 0); ``None`` means ``size`` (non-overlapping windows).

    Shapes: ``X (n, H, W, C)``, ``Y (n, Ho, Wo, C)`` with ``Ho = (H - size) // stride + 1``;
    rows and columns past the last full window are dropped (as in PyTorch).
    """

    def __init__(self, size: int = 2, stride: int | None = None):
        check(is_int(size, 1), "size", size, "must be a positive integer")
        check(stride is None or is_int(stride, 1), "stride", stride,
              "must be a positive integer (or null for stride = size)")
        self.size = int(size)
        self.stride = None if stride is None else int(stride)

    def build(self, in_shape, rng, dtype):
        check(len(in_shape) == 3, "in_shape", tuple(in_shape),
              "max_pool2d needs image input (H, W, C); put an image layer first")
        H, W, C = (int(d) for d in in_shape)
        k, s = self.size, self._s
        check(k <= min(H, W), "size", k, f"must fit in the {H}x{W} input")
        self.in_shape = (H, W, C)
        self.out_hw = (_out_size(H, k, s), _out_size(W, k, s))
        # The common 2x2/2 pool tiling the image exactly is done on a reshaped view.
        self._halves = k == s == 2 and H % 2 == 0 and W % 2 == 0
        return self.out_hw + (C,)

    @property
    def _s(self) -> int:
        return self.size if self.stride is None else self.stride

    def forward(self, X, training=False):
        if self._halves:
            return self._forward_halves(X, training)
        Y = None
        for V in self._views(X):
            Y = V.copy() if Y is None else np.maximum(Y, V, out=Y)
        self.X, self.Y = X, Y
        return Y

    def backward(self, dY):
        if self._halves:
            return self._backward_halves(dY)
        H, W, C = self.in_shape
        dX = np.zeros((len(dY), H, W, C), dtype=dY.dtype)
        taken = np.zeros(self.Y.shape, dtype=bool)
        for V, dV in zip(self._views(self.X), self._views(dX)):
            first = (V == self.Y) & ~taken
            dV += dY * first
            taken |= first
        self.X = self.Y = None
        return dX

    def _views(self, X):
        """The ``size**2`` views ``X[:, i::s, j::s]`` cropped to ``(n, Ho, Wo, C)``, in
        column-major window order."""
        k, s = self.size, self._s
        Ho, Wo = self.out_hw
        return [X[:, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s]
                for j in range(k) for i in range(k)]

    # 2x2 windows at stride 2: X viewed as (n*Ho, 2, Wo, 2, C) = (row pair, top/bottom,
    # column pair, left/right, channel). Top and bottom rows are contiguous runs of W*C
    # values, so the row-pair max is one long elementwise loop; only the left/right max
    # (and its mask) runs C-long inner loops, on arrays half the input's size.

    def _forward_halves(self, X, training):
        n, H, W, C = X.shape
        Xr = X.reshape(n * (H // 2), 2, W // 2, 2, C)
        M = np.maximum(Xr[:, 0], Xr[:, 1])  # (n*Ho, Wo, 2, C): max of each column
        Y = np.maximum(M[:, :, 0], M[:, :, 1])
        # evaluation batches are large and seldom followed by backward: M is recomputed
        self.Xr, self.M, self.Y = Xr, M if training else None, Y
        return Y.reshape(n, H // 2, W // 2, C)

    def _backward_halves(self, dY):
        n, Ho, Wo, C = dY.shape
        Xr = self.Xr
        M = self.M if self.M is not None else np.maximum(Xr[:, 0], Xr[:, 1])
        d = dY.reshape(n * Ho, Wo, C)
        # dY goes to the column holding the max (the left one on a tie) ...
        left = M[:, :, 0] == self.Y  # (against contiguous Y: faster than M[:, :, 1])
        dM = np.empty(M.shape, dtype=dY.dtype)
        np.multiply(d, left, out=dM[:, :, 0])
        np.subtract(d, dM[:, :, 0], out=dM[:, :, 1])
        # ... then to the row holding that column's max (the top one on a tie).
        top = Xr[:, 0] == M
        dX = np.empty(Xr.shape, dtype=dY.dtype)
        np.multiply(dM, top, out=dX[:, 0])
        np.subtract(dM, dX[:, 0], out=dX[:, 1])
        self.Xr = self.M = self.Y = None
        return dX.reshape(n, 2 * Ho, 2 * Wo, C)
