"""Tensor specs: what a loaded model's inputs and outputs are, and batches checked against them before MindSpore
Lite sees the data.

MindSpore Lite only compares byte counts when data is set, so NCHW data fed to an NHWC tensor runs and
returns garbage. Everything here exists to turn such silent errors into loud ones.
"""
from collections import namedtuple

import numpy as np

from .errors import InputMismatchError

_IMAGE_CHANNELS = (1, 3, 4)


class TensorSpec(namedtuple("TensorSpec", "name shape dtype layout")):
    """One model input or output. `shape` uses -1 for dynamic dims; `layout` is NHWC, NCHW or None."""

    __slots__ = ()

    @property
    def dynamic(self):
        # type: () -> bool
        return any(d < 0 for d in self.shape)

    @property
    def per_sample(self):
        # type: () -> int
        """Values per sample (the product of the non-batch dims): a [N, 128, 1, 1] head has 128 scores."""
        n = 1
        for d in self.shape[1:]:
            n *= max(d, 1)
        return n

    def to_dict(self):
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout}

    @classmethod
    def from_dict(cls, d):
        return cls(d["name"], tuple(d["shape"]), d["dtype"], d["layout"])


def guess_layout(shape):
    """Layout from the shape alone: MindSpore Lite's own `Tensor.format` is unreliable (NHWC .ms
    inputs report NCHW)."""
    if len(shape) != 4:
        return None
    c_last, c_first = shape[3] in _IMAGE_CHANNELS, shape[1] in _IMAGE_CHANNELS
    if c_last and not c_first:
        return "NHWC"
    if c_first and not c_last:
        return "NCHW"
    return None


def check_inputs(specs, arrays, model_path):
    """Validate a batch against the input specs; returns C-contiguous arrays and the batch size."""
    if len(arrays) != len(specs):
        raise InputMismatchError("{} takes {} input(s) ({}), got {}.".format(
            model_path, len(specs), ", ".join(s.name for s in specs), len(arrays)))
    batch = None
    checked = []
    for spec, arr in zip(specs, arrays):
        arr = np.asarray(arr)
        _check_one(spec, arr, model_path)
        if batch is None:
            batch = arr.shape[0]
        elif arr.shape[0] != batch:
            raise InputMismatchError("{}: inputs have different batch sizes ({} vs {}).".format(
                model_path, batch, arr.shape[0]))
        checked.append(np.ascontiguousarray(arr))
    return checked, batch


def _check_one(spec, arr, model_path):
    where = "{} input '{}'".format(model_path, spec.name)
    if arr.dtype != np.dtype(spec.dtype):
        raise InputMismatchError("{} expects {} data, got {}: convert with `batch.astype(np.{})` "
                                 "(after the model's own normalisation).".format(where, spec.dtype, arr.dtype,
                                                                                 spec.dtype))
    expected = tuple(spec.shape)
    if arr.ndim != len(expected):
        raise InputMismatchError("{} expects a batch of rank {} shaped {}, got shape {}.".format(
            where, len(expected), _fmt(expected), tuple(arr.shape)))
    if arr.shape[0] == 0:
        raise InputMismatchError("{}: empty batch.".format(where))
    if all(e < 0 or e == a for e, a in zip(expected[1:], arr.shape[1:])):
        return
    hint = ""
    if spec.layout == "NHWC" and arr.ndim == 4 and tuple(arr.shape[1:]) == (expected[3], expected[1], expected[2]):
        hint = " This looks like NCHW data for an NHWC model: use `batch.transpose(0, 2, 3, 1)`."
    elif spec.layout == "NCHW" and arr.ndim == 4 and tuple(arr.shape[1:]) == (expected[2], expected[3], expected[1]):
        hint = " This looks like NHWC data for an NCHW model: use `batch.transpose(0, 3, 1, 2)`."
    raise InputMismatchError("{} expects shape {} ({}), got {}.{}".format(
        where, _fmt(expected), spec.layout or "no image layout", tuple(arr.shape), hint))


def _fmt(shape):
    return "(" + ", ".join("N" if i == 0 and d < 0 else ("?" if d < 0 else str(d))
                           for i, d in enumerate(shape)) + ")"
