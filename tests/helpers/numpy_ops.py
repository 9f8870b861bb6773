"""Numpy references of the operators' documented semantics (NHWC), written independently of the upgrader."""
from __future__ import annotations

import math

import numpy as np


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow/ONNX SAME_UPPER padding: output ceil(size / stride), the odd pixel at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), group=1):
    """x [N,H,W,C], w [O,kh,kw,C/group] (KHWC), pads (up, down, left, right)."""
    n, h, wd, c = x.shape
    o, kh, kw, ci = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (pads[0], pads[1]), (pads[2], pads[3]), (0, 0)))
    oh = (h + pads[0] + pads[1] - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    ow = (wd + pads[2] + pads[3] - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    out = np.zeros((n, oh, ow, o))
    og = o // group
    for g in range(group):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, i * dilation[0]:i * dilation[0] + stride[0] * (oh - 1) + 1:stride[0],
                           j * dilation[1]:j * dilation[1] + stride[1] * (ow - 1) + 1:stride[1],
                           g * ci:(g + 1) * ci]
                out[..., g * og:(g + 1) * og] += patch @ w[g * og:(g + 1) * og, i, j, :].T
    return out + (0 if b is None else b)


def deconv2d_depthwise(x, w, stride=(2, 2), pads=(0, 0, 0, 0)):
    """Transposed depthwise convolution: every input pixel scatters x * w[c] onto a kh x kw window."""
    n, h, wd, c = x.shape
    _, kh, kw, _ = w.shape
    full = np.zeros((n, (h - 1) * stride[0] + kh, (wd - 1) * stride[1] + kw, c))
    for i in range(kh):
        for j in range(kw):
            full[:, i:i + stride[0] * (h - 1) + 1:stride[0], j:j + stride[1] * (wd - 1) + 1:stride[1]] += \
                x * w[:, i, j, 0]
    return full[:, pads[0]:full.shape[1] - pads[1], pads[2]:full.shape[2] - pads[3]]


def pool2d(x, kernel, stride, pads=(0, 0, 0, 0), mode="max", ceil=False):
    """Max / average pooling; the average counts only pixels inside the input (padding excluded)."""
    n, h, w, c = x.shape
    rnd = math.ceil if ceil else math.floor
    oh = rnd((h + pads[0] + pads[1] - kernel[0]) / stride[0]) + 1
    ow = rnd((w + pads[2] + pads[3] - kernel[1]) / stride[1]) + 1
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * stride[0] - pads[0], j * stride[1] - pads[2]
            win = x[:, max(h0, 0):min(h0 + kernel[0], h), max(w0, 0):min(w0 + kernel[1], w)]
            out[:, i, j] = win.max(axis=(1, 2)) if mode == "max" else win.mean(axis=(1, 2))
    return out


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


ACTIVATIONS = {
    "RELU": lambda x, a: np.maximum(x, 0),
    "RELU6": lambda x, a: np.clip(x, 0, 6),
    "SIGMOID": lambda x, a: sigmoid(x),
    "TANH": lambda x, a: np.tanh(x),
    "HSWISH": lambda x, a: x * np.clip(x + 3, 0, 6) / 6,
    "HSIGMOID": lambda x, a: np.clip(x + 3, 0, 6) / 6,
    "LEAKY_RELU": lambda x, a: np.where(x > 0, x, a["alpha"] * x),
    "HARD_TANH": lambda x, a: np.clip(x, a["min_val"], a["max_val"]),
    "SWISH": lambda x, a: x * sigmoid(x),
    "ELU": lambda x, a: np.where(x > 0, x, a["alpha"] * (np.exp(x) - 1)),
    "SOFTPLUS": lambda x, a: np.log1p(np.exp(x)),
}


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def resize_nearest_asymmetric(x, oh, ow):
    """Nearest neighbour, source index floor(dst * in / out)."""
    h, w = x.shape[1:3]
    rows = np.minimum(np.floor(np.arange(oh) * h / oh).astype(int), h - 1)
    cols = np.minimum(np.floor(np.arange(ow) * w / ow).astype(int), w - 1)
    return x[:, rows][:, :, cols]


def resize_linear(x, oh, ow, align_corners):
    h, w = x.shape[1:3]

    def coords(out, size):
        if align_corners and out > 1:
            src = np.arange(out) * (size - 1) / (out - 1)
        else:
            src = np.arange(out) * size / out
        lo = np.minimum(np.floor(src).astype(int), size - 1)
        return lo, np.minimum(lo + 1, size - 1), src - lo

    r0, r1, fr = coords(oh, h)
    c0, c1, fc = coords(ow, w)
    top = x[:, r0] * (1 - fr)[None, :, None, None] + x[:, r1] * fr[None, :, None, None]
    return top[:, :, c0] * (1 - fc)[None, None, :, None] + top[:, :, c1] * fc[None, None, :, None]


def dense(x, w, b=None):
    """A fully connected layer with MindSpore's weight layout: x [N, in], w [out, in] -> x @ w.T + b."""
    return x.astype(np.float64) @ w.T + (0 if b is None else b)
