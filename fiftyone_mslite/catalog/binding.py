"""The one bind step: a catalog entry + an opened model → the entry completed from the file, its model family
bound to the file's tensors, and which outputs are the head and the embedding. `Classifier` and `models add` both
bind through `bind`, so what the loaded file says about an entry is decided in one place.

Also the entries for a bare model file (what the user said; the bind step completes the rest from the file).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from ..adapters.base import Adapter
from ..adapters.preprocessing import PREPROCESS_FIELDS, PreprocessConfig, input_hw
from ..files import sha256_of
from ..modelfiles.embedding import split_outputs
from ..modelfiles.tflite_dequant import is_quantized_tflite
from ..runtime import Session, formats
from .labelsets import LabelSet
from .registry import Catalog
from .schema import Conversion, Embedding, Fact, ModelEntry, Source, model_name_for


@dataclass(frozen=True)
class Bound:
    """An entry bound to an opened model file."""

    entry: ModelEntry  # completed from the file where asked, with the embedding output's size
    adapter: Adapter  # bound to the file's input and head outputs
    head: list[int]  # indices of the outputs the adapter reads
    embedding: int | None  # index of the embedding output
    embedding_problem: str  # why there is no embedding (for the error `embeddings()` raises)


def bind(catalog: Catalog, entry: ModelEntry, labels: LabelSet, session: Session, complete: bool = False,
         embedding_tensor: str | None = None, embedding_problem: str | None = None) -> Bound:
    """Bind `entry` to the opened `session`. `complete`: fill what a user may leave out (input size, class count)
    from the file itself; `embedding_tensor`: the embedding output the file was made with (a converted file records
    it), else the entry's; `embedding_problem`: why the file has no embedding output, if known already."""
    if embedding_tensor:
        entry = entry.model_copy(update={"embedding": Embedding(tensor=embedding_tensor)})
    if complete:
        preprocess = entry.preprocess
        if preprocess.input_size is None:
            preprocess = dataclasses.replace(preprocess, input_size=input_hw(session.inputs[0])[0])
        entry = entry.model_copy(update={"num_classes": session.outputs[0].per_sample, "preprocess": preprocess})
    outputs = session.outputs
    head, emb = split_outputs([o.name for o in outputs], entry.embedding.tensor)
    if emb is not None:
        size = prod(outputs[emb].shape[1:])
        entry = entry.model_copy(update={"embedding": Embedding(tensor=entry.embedding.tensor, size=size)})
    elif entry.embedding.tensor:
        embedding_problem = (f"model '{entry.name}': its file {session.path} has no output named "
                             f"{entry.embedding.tensor!r} (outputs: {[o.name for o in outputs]})")
    adapter = catalog.bound_adapter(entry, labels, session.inputs, [outputs[i] for i in head])
    return Bound(entry, adapter, head, emb, embedding_problem or f"model '{entry.name}' has no embedding output")


def split_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pre-processing fields, the rest) of keyword overrides."""
    pre = {k: v for k, v in overrides.items() if k in PREPROCESS_FIELDS}
    return pre, {k: v for k, v in overrides.items() if k not in PREPROCESS_FIELDS}


def entry_for_file(path: str | Path, labels: str, overrides: dict[str, Any]) -> ModelEntry:
    """An entry for a local model file (.ms/.mindir, or an ONNX/TFLite/... source converted on first use); the input
    size and class count come from the model (`bind(complete=True)`), mean/std not given from the file's own
    declaration (TFLite metadata) as `models add` reads it."""
    path = Path(path).expanduser().resolve()
    pre, rest = split_overrides(overrides)
    mean, std, normalization = file_normalization(path, pre.get("mean"), pre.get("std"), None, reader="load_model")
    pre.update({name: value for name, value in (("mean", mean), ("std", std)) if value is not None})
    # a quantized TFLite runs on MindSpore Lite 2.0.0's unvectorised int8 kernels unless dequantized first
    # (20-90x slower on x86: docs/quantized.md), so a file given as it is gets the catalog's fast path
    conversion = Conversion(dequantize=is_quantized_tflite(path))
    # other fields (task, background, ...) as the user said
    rest = {"name": model_name_for(path.stem), "num_classes": 1, **rest}
    return ModelEntry(labels=labels, source=Source(path=str(path), sha256=sha256_of(path), conversion=conversion),
                      preprocess=PreprocessConfig(**pre), facts=(normalization,), origin="file", **rest)


FROM_METADATA = "the file's TFLite metadata"
DEFAULT_NORMALIZATION = "ImageNet's (the default)"


def file_normalization(local: Path, mean, std, like: str | None, reader: str) -> tuple[object, object, Fact]:
    """Mean and std for a model file's entry (None: the recipe's) and a fact saying where they come from: given
    (--mean/--std), else the normalisation the file declares (TFLite metadata), else `like`'s recipe, else
    ImageNet's. `reader` names who read the file (`models add`, `load_model`), for the fact."""
    from ..modelfiles.tflite_metadata import tflite_normalization

    declared = tflite_normalization(local) if formats.sniff(formats.read_head(str(local))) == formats.TFLITE else None
    said = declared.describe() if declared else None
    if declared is not None and (mean is None or std is None):
        file_mean, file_std = declared.unit_scale()
        origin = FROM_METADATA if mean is None and std is None else (
            f"{'--mean' if mean is not None else '--std'}, the other from the file's TFLite metadata")
        mean, std = mean or file_mean, std or file_std
    elif declared is not None:
        origin = "--mean/--std, overriding the file's TFLite metadata"
    elif mean is not None or std is not None:
        origin = "--mean/--std" if mean is not None and std is not None else "--mean/--std and the recipe's"
    else:
        origin = f"--like {like}" if like else DEFAULT_NORMALIZATION
    source = (f"NormalizationOptions in the file's TFLite metadata, read by {reader}" if declared else
              f"the file declares no normalisation (read by {reader})")
    status = "verified" if origin == FROM_METADATA else "inferred"
    return mean, std, Fact(field="normalization", value={"from": origin, "declared": said}, status=status,
                           source=source)

