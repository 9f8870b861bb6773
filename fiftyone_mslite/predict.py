"""Classify image files directly (no FiftyOne): the engine behind `fiftyone-mslite predict`.

Kept free of FiftyOne imports so that a one-off prediction starts in about a second.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .adapters.preprocessing import PreprocessConfig, preprocess


@dataclass(frozen=True)
class Prediction:
    image: str
    top: tuple[tuple[str, float], ...] = ()
    error: str | None = None

    def to_dict(self) -> dict:
        if self.error:
            return {"image": self.image, "error": self.error}
        return {"image": self.image, "top_k": [{"label": lbl, "confidence": c} for lbl, c in self.top]}


def read_labels(path: str | Path, num_classes: int) -> list[str]:
    """One label per line (an optional leading index is dropped); a 1000-line file for a 1001-output
    model gets 'background' at index 0, as TF-slim models expect."""
    lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    labels = [ln.split(maxsplit=1)[1] if ln.split(maxsplit=1)[0].isdigit() and " " in ln else ln
              for ln in lines]
    if len(labels) == num_classes - 1:
        labels = ["background"] + labels
    if len(labels) != num_classes:
        raise ValueError(f"{path} has {len(labels)} labels but the model outputs {num_classes} scores")
    return labels


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax unless the row already is a probability distribution."""
    scores = scores.astype(np.float64)
    if scores.min() >= 0 and np.allclose(scores.sum(axis=-1), 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def load_image(path: str | Path) -> Image.Image:
    """Decode as RGB, following EXIF orientation; errors name the file."""
    try:
        with Image.open(path) as img:
            return ImageOps.exif_transpose(img).convert("RGB")
    except FileNotFoundError:
        raise ValueError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot decode image {path}: {exc}") from None


def classify_files(session, images: Sequence[str | Path], labels: Sequence[str] | None = None,
                   top_k: int = 5, cfg: PreprocessConfig | None = None,
                   batch_size: int = 8) -> Iterator[Prediction]:
    """Yield one Prediction per image, in order; an unreadable image yields an error, not an exception."""
    cfg = cfg or PreprocessConfig()
    spec = session.inputs[0]
    for lo in range(0, len(images), batch_size):
        chunk = images[lo:lo + batch_size]
        tensors, ok, results = [], [], {}
        for path in chunk:
            try:
                tensors.append(preprocess(load_image(path), spec, cfg))
                ok.append(str(path))
            except ValueError as exc:
                results[str(path)] = Prediction(str(path), error=str(exc))
        if tensors:
            probs = to_probabilities(session.run(np.stack(tensors))[0].reshape(len(tensors), -1))
            for path, row in zip(ok, probs):
                best = np.argsort(-row)[:top_k]
                names = [labels[i] if labels else str(i) for i in best]
                results[path] = Prediction(path, tuple((n, float(row[i])) for n, i in zip(names, best)))
        yield from (results[str(p)] for p in chunk)
