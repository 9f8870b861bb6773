"""Catalog entries for a bare model file: what the user said, completed from the loaded model itself."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..adapters.preprocessing import PREPROCESS_FIELDS, PreprocessConfig, input_hw
from ..files import sha256_of
from ..runtime import Session
from .schema import ModelEntry, Source, model_name_for


def split_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pre-processing fields, the rest) of keyword overrides."""
    pre = {k: v for k, v in overrides.items() if k in PREPROCESS_FIELDS}
    return pre, {k: v for k, v in overrides.items() if k not in PREPROCESS_FIELDS}


def entry_for_file(path: str | Path, labels: str, overrides: dict[str, Any]) -> ModelEntry:
    """An entry for a local .ms/.mindir; the input size and class count come from the model (`complete_entry`)."""
    path = Path(path).expanduser().resolve()
    pre, rest = split_overrides(overrides)
    # other fields (task, background, ...) as the user said
    rest = {"name": model_name_for(path.stem), "num_classes": 1, **rest}
    return ModelEntry(labels=labels, source=Source(path=str(path), sha256=sha256_of(path)),
                      preprocess=PreprocessConfig(**pre), origin="file", **rest)


def complete_entry(entry: ModelEntry, session: Session) -> ModelEntry:
    """Fill what a user may leave out (input size, class count) from the loaded model itself."""
    preprocess = entry.preprocess
    if preprocess.input_size is None:
        preprocess = dataclasses.replace(preprocess, input_size=input_hw(session.inputs[0])[0])
    return entry.model_copy(update={"num_classes": session.outputs[0].per_sample, "preprocess": preprocess})
