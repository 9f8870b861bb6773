"""Pre-processing calibration: which recipe makes a catalog model right most often on labeled samples.

Several catalog recipes are inferred, and a user's guess at `models add` can be wrong without any error: a wrong
normalisation or channel order costs tens of points of accuracy, silently. This measures instead. Each image is
decoded once (JPEG draft mode down to what the widest recipe needs); per recipe only pre-processing and inference
re-run. The search goes one axis at a time from the entry's own recipe (normalisation, channel order, resize,
crop, interpolation) and keeps a change only when it scores better, so about ten recipes run, not the 64 of
the full grid. Recipes rank by the mean probability they give the true class, not by top-1: on a few hundred
samples top-1 moves in steps of one sample and ties or flips by chance between close recipes (on 50 ImageNet
images, three resize/crop/filter choices tie at the best top-1), while every sample's confidence moves the
probability.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fiftyone as fo
import numpy as np

from ..adapters.images import open_rgb
from ..adapters.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
from ..adapters.softmax import softmax
from ..catalog.labelsets import normalize
from ..catalog.schema import Fact
from ..catalog.user import save_calibrated
from ..classifier import load_classifier
from ..errors import DatasetError, ImageDecodeError, ModelMismatchError
from . import compat
from .views import Samples, label_field_type

NORMALISATIONS = (  # (mean, std) on the 0..1 scale
    (IMAGENET_MEAN, IMAGENET_STD),  # torchvision / timm
    ((0.5,) * 3, (0.5,) * 3),  # -1..1: TF-slim, Inception, MobileNet TFLite
    ((0.0,) * 3, (1.0,) * 3),  # 0..1
    ((0.0,) * 3, (1 / 255,) * 3),  # raw 0..255
)
CROPS = (0.875, 1.0)
AXES: tuple[tuple[dict[str, Any], ...], ...] = (  # most decisive first: a wrong normalisation masks everything else
    tuple({"mean": m, "std": s} for m, s in NORMALISATIONS),
    ({"channel_order": "RGB"}, {"channel_order": "BGR"}),
    ({"resize": "short"}, {"resize": "squash"}),
    tuple({"crop_fraction": c} for c in CROPS),
    ({"interpolation": "bilinear"}, {"interpolation": "bicubic"}),
)
DEFAULT_LIMIT = 500


@dataclass(frozen=True)
class RecipeScore:
    """One recipe's result on the scored samples."""

    recipe: PreprocessConfig
    correct: int
    samples: int
    true_class_prob: float  # mean probability given to the true class: what recipes are ranked by

    @property
    def top1(self) -> float:
        return self.correct / self.samples

    @property
    def key(self) -> tuple[float, int]:
        return self.true_class_prob, self.correct

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": dataclasses.asdict(self.recipe), "top1": self.top1, "correct": self.correct,
                "true_class_prob": self.true_class_prob}


@dataclass(frozen=True)
class Calibration:
    """What `calibrate` measured: every recipe tried (best first), and the catalog's own among them."""

    model: str
    dataset: str
    gt_field: str
    skipped: int  # samples whose ground truth is not a class of the model, or whose image does not decode
    start: RecipeScore
    scores: tuple[RecipeScore, ...]

    @property
    def best(self) -> RecipeScore:
        return self.scores[0]

    def fact(self) -> Fact:
        """The measurement as catalog provenance (stored with the recipe by `write_calibration`)."""
        best = self.best
        return Fact(field="preprocess", status="calibrated",
                    value={"top1": round(best.top1, 4), "samples": best.samples,
                           "before_top1": round(self.start.top1, 4), "recipes_tried": len(self.scores)},
                    source=f"fiftyone-mslite models calibrate on dataset '{self.dataset}' (field '{self.gt_field}', "
                           f"{best.samples} labeled samples)")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "gt_field": self.gt_field,
                "samples": self.best.samples, "skipped": self.skipped, "best": self.best.to_dict(),
                "start": self.start.to_dict(), "scores": [s.to_dict() for s in self.scores]}

    def report(self) -> str:
        """For people: the table of recipes, best first, with the catalog's own marked."""
        lines = [f"{self.model} on '{self.dataset}' ({self.gt_field}: {self.best.samples} samples scored, "
                 f"{self.skipped} skipped), {len(self.scores)} recipes, best first by p(true), the mean "
                 "probability of the true class:",
                 "   top-1  p(true)  recipe"]
        for s in self.scores:
            mark = "  <- best" if s is self.best else "  <- catalog" if s is self.start else ""
            lines.append(f"  {s.top1:6.1%}  {s.true_class_prob:7.3f}  {s.recipe.describe()}{mark}")
        gain = (self.best.top1 - self.start.top1) * 100
        lines.append("the catalog's recipe is the best one" if self.best is self.start else
                     f"best: +{gain:.1f} points of top-1 over the catalog's recipe")
        return "\n".join(lines)


def search(score: Callable[[PreprocessConfig], RecipeScore], start: PreprocessConfig) -> tuple[RecipeScore, ...]:
    """Coordinate search over AXES from `start`; every recipe tried, best first (ties keep the earlier one, so
    the start wins a tie). A second pass catches an axis whose best value depended on a later axis."""
    tried: dict[PreprocessConfig, RecipeScore] = {}

    def run(recipe: PreprocessConfig) -> RecipeScore:
        if recipe not in tried:
            tried[recipe] = score(recipe)
        return tried[recipe]

    best = run(start)
    for _ in range(2):
        before = best
        for axis in AXES:
            for change in axis:
                candidate = run(dataclasses.replace(best.recipe, **change))
                if candidate.key > best.key:
                    best = candidate
        if best is before:
            break
    return tuple(sorted(tried.values(), key=lambda s: s.key, reverse=True))


def calibrate(samples: Samples, model: str, gt_field: str = "ground_truth", *, limit: int | None = DEFAULT_LIMIT,
              threads: int = 2, batch_size: int = 16, seed: int = 51) -> Calibration:
    """Score the plausible pre-processing recipes of catalog model `model` on the samples of `samples` that
    have ground truth in `gt_field` (a seeded random `limit` of them); see the module docstring."""
    if label_field_type(samples, gt_field) is not fo.Classification:
        raise DatasetError(f"ground-truth field '{gt_field}' must hold single Classification labels")
    labeled = samples.exists(gt_field)
    if limit is not None and len(labeled) > limit:
        labeled = labeled.take(limit, seed=seed)  # a folder import is class-ordered: the first N are one class
    paths, truths = labeled.values(["filepath", f"{gt_field}.label"])
    name = compat.root_dataset(samples).name
    with load_classifier(model, threads=threads) as clf:
        if clf.task != "single":
            raise ModelMismatchError(f"calibration measures top-1 accuracy; '{model}' is a multi-label model")
        index: dict[str, int] = {}
        for i, cls in enumerate(clf.class_names):
            index.setdefault(normalize(cls), i)
        start = clf.preprocess_config
        widest = dataclasses.replace(start, resize="short", crop_fraction=min(start.crop_fraction, *CROPS))
        images, targets = [], []
        for path, truth in zip(paths, truths):
            target = index.get(normalize(truth))
            if target is None:
                continue
            try:
                images.append(open_rgb(path, clf.fit._replace(config=widest)))
            except ImageDecodeError:
                continue
            targets.append(target)
        if not images:
            raise DatasetError(f"no sample of dataset '{name}' has a '{gt_field}' label that is one of the classes "
                               f"of '{model}' (label set '{clf.entry.labels}') and an image that decodes")

        def score(recipe: PreprocessConfig) -> RecipeScore:
            correct, prob = 0, 0.0
            for lo in range(0, len(images), batch_size):
                batch = np.stack([clf.prepare(img, recipe) for img in images[lo:lo + batch_size]])
                for pred, target in zip(clf.infer(batch), targets[lo:lo + batch_size]):
                    correct += pred.index == target
                    prob += float(softmax(pred.logits.astype(np.float64))[target])
            return RecipeScore(recipe, correct, len(images), prob / len(images))

        scores = search(score, start)
    catalog_score = next(s for s in scores if s.recipe == start)
    return Calibration(model, name, gt_field, len(paths) - len(images), catalog_score, scores)


def write_calibration(result: Calibration) -> Path:
    """Store the best recipe for the model in the user catalog, with the measurement as a `calibrated` fact."""
    return save_calibrated(result.model, result.best.recipe, result.fact())
