"""The calibration search on a synthetic score: finds the best recipe without running the full grid."""
from __future__ import annotations

import dataclasses
import itertools

from fiftyone_mslite.adapters.preprocessing import PreprocessConfig
from fiftyone_mslite.integration.calibration import AXES, RecipeScore, search

TARGET = PreprocessConfig(input_size=8, resize="squash", crop_fraction=1.0, interpolation="bicubic",
                          mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), channel_order="BGR")


def synthetic(recipe: PreprocessConfig, calls: list) -> RecipeScore:
    """More agreement with TARGET scores higher; normalisation matters most, interpolation least."""
    calls.append(recipe)
    weights = {"mean": 8, "channel_order": 4, "resize": 2, "crop_fraction": 2, "interpolation": 1}
    agree = sum(w for f, w in weights.items() if getattr(recipe, f) == getattr(TARGET, f))
    return RecipeScore(recipe, correct=agree, samples=20, true_class_prob=agree / 20)


def test_coordinate_search_finds_the_best_recipe_with_a_fraction_of_the_grid():
    calls: list = []
    start = PreprocessConfig(input_size=8)  # differs from TARGET on every axis
    scores = search(lambda r: synthetic(r, calls), start)
    grid = 1
    for axis in AXES:
        grid *= len(axis)
    assert scores[0].recipe == TARGET
    assert len(calls) == len(set(calls)) == len(scores) < grid / 3  # each recipe runs once, few of them
    assert start in calls and all(r.input_size == 8 for r in calls)  # the model's input size is never varied


def test_a_tie_keeps_the_catalog_recipe():
    start = PreprocessConfig(input_size=8)
    flat = search(lambda r: RecipeScore(r, 10, 20, 0.5), start)
    assert flat[0].recipe == start


def test_axes_cover_the_plausible_recipes():
    def values(field: str) -> set:
        return {change[field] for axis in AXES for change in axis if field in change}

    assert values("resize") == {"short", "squash"} and values("crop_fraction") == {0.875, 1.0}
    assert values("interpolation") == {"bilinear", "bicubic"} and values("channel_order") == {"RGB", "BGR"}
    assert (0.0,) * 3 in values("mean") and (1 / 255,) * 3 in values("std")  # raw 0..255 pixels
    for combo in itertools.product(*AXES):  # every combination is a valid recipe
        dataclasses.replace(PreprocessConfig(input_size=8), **{k: v for c in combo for k, v in c.items()})
