"""The contract of a model format's steps (`ModelFormat.prepare` / `.bridge` in `runtime.formats`): what a step is
asked and what it gives, and how a step named "module:function" in the format table is found."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .embedding import EmbeddingOutput


@dataclass(frozen=True)
class PrepareRequest:
    """What the caller of a conversion asked for, handed to the source format's `prepare` step."""

    embedding: str | None = None  # a tensor name, or embedding.AUTO: expose it as an extra output
    dequantize: bool = False  # rewrite a quantized model as float32 first


@dataclass(frozen=True)
class Prepared:
    """What a `prepare` step made: `feed` (a file of `format`, which MindSpore Lite's converter reads) and what
    was done to get it."""

    feed: Path
    format: str
    fixes: tuple[str, ...] = ()
    embedding: EmbeddingOutput | None = None


def resolve(step: str | Callable) -> Callable:
    """A step of the format table: a callable, or "package.module:function" imported on first use (so that the
    table, in the Python 3.7 runtime, names steps that need ONNX or flatbuffers without importing them)."""
    if callable(step):
        return step
    module, _, name = step.partition(":")
    return getattr(importlib.import_module(module), name)
