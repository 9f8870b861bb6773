"""Tensor specs: what a loaded model's inputs and outputs are, and batches checked against them before MindSpore
Lite sees the data.

MindSpore Lite only compares byte counts when data is set, so NCHW data fed to an NHWC tensor runs and
returns garbage. Everything here exists to turn such silent errors into loud ones.
"""
from collections import namedtuple

import numpy as np

from . import settings
from .errors import InputMismatchError, ModelFileError
from .settings import human_size

_IMAGE_CHANNELS = (1, 3, 4)
MAX_INPUT_ENV = "FIFTYONE_MSLITE_MAX_INPUT_SIZE"


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


def concrete_shape(spec, batch):
    """The spec's shape with a dynamic batch dim set to `batch` and any other dynamic dim to 1."""
    return tuple(batch if (i == 0 and d < 0) else (1 if d < 0 else d) for i, d in enumerate(spec.shape))


def check_input_size(specs, shapes, model_path):
    """Refuse, before anything is allocated, inputs whose shapes need more than FIFTYONE_MSLITE_MAX_INPUT_SIZE
    for one call: a corrupt or hostile file declaring a dim of 65536 must not ask for tens of GB."""
    limit = settings.size(MAX_INPUT_ENV)
    sizes = [int(np.prod(shape, dtype=object)) * np.dtype(spec.dtype).itemsize for spec, shape in zip(specs, shapes)]
    if sum(sizes) > limit:
        big = sizes.index(max(sizes))
        spec, shape = specs[big], shapes[big]
        raise ModelFileError(
            "{}: input '{}' {} {} needs {} for one call ({} with every input), over the {} limit of {}: the file's "
            "dims are probably corrupt; if the model really takes that much, raise {}.".format(
                model_path, spec.name, spec.dtype, tuple(shape), human_size(max(sizes)), human_size(sum(sizes)),
                MAX_INPUT_ENV, human_size(limit), MAX_INPUT_ENV))


def check_inputs(specs, arrays, model_path):
    """Validate a batch against the input specs; returns C-contiguous arrays and the batch size."""
    if len(arrays) != len(specs):
        raise InputMismatchError("{} takes {} input(s) ({}), got {}.".format(
            model_path, len(specs), ", ".join(s.name for s in specs), len(arrays)))
    checked = [np.ascontiguousarray(arr) for arr in arrays]
    for spec, arr in zip(specs, checked):
        _check_one(spec, arr, model_path)
    batches = [arr.shape[0] for arr in checked]
    if len(set(batches)) == 1:
        return checked, batches[0]
    if all(not spec.dynamic and arr.shape == tuple(spec.shape) for spec, arr in zip(specs, checked)):
        return checked, 1  # inputs without a common batch dim (e.g. an image and a [16] vector): one graph call
    raise InputMismatchError("{}: inputs have different batch sizes ({} vs {}); inputs without a common batch "
                             "dimension must each be given at exactly their declared shape ({}).".format(
                                 model_path, batches[0], next(b for b in batches if b != batches[0]),
                                 ", ".join("{} {}".format(s.name, _fmt(s.shape)) for s in specs)))


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
