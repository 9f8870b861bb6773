"""Adapters and pre-processing in isolation: the math between pixels, scores and labels."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fiftyone_mslite.adapters import Adapter, MultiLabelAdapter, MultiLabelPrediction, SoftmaxAdapter
from fiftyone_mslite.adapters.preprocessing import PreprocessConfig, preprocess, resize_and_crop
from fiftyone_mslite.adapters.softmax import top_k_indices
from fiftyone_mslite.catalog.labelsets import LabelSet
from fiftyone_mslite.catalog.schema import ModelEntry, Source
from fiftyone_mslite.errors import ModelMismatchError
from fiftyone_mslite.runtime import TensorSpec

NHWC = TensorSpec("x", (1, 4, 4, 3), "float32", "NHWC")


def entry(n: int, task: str = "single", **kw) -> ModelEntry:
    return ModelEntry(name="m", labels="l", num_classes=n, task=task, adapter="multilabel" if task == "multi" else
                      "classifier", source=Source(path="/m.ms"), preprocess=PreprocessConfig(input_size=4), **kw)


def family(cls: type[Adapter], model: ModelEntry, names: LabelSet) -> Adapter:
    """An adapter built from an entry's contract, as the catalog builds it."""
    return cls(model.preprocess, names, model.adapter_options())


def labels(n: int, **kw) -> LabelSet:
    return LabelSet("l", tuple(f"c{i}" for i in range(n)), **kw)


def out(n: int) -> list[TensorSpec]:
    return [TensorSpec("y", (1, n), "float32", None)]


def test_classifier_softmax_top_k_and_logits():
    clf = family(SoftmaxAdapter, entry(3), labels(3)).bind([NHWC], out(3))
    (pred,) = clf.postprocess([np.array([[1.0, 3.0, 2.0]], np.float32)])
    e = np.exp([1.0, 3.0, 2.0])
    assert pred.label == "c1" and pred.index == 1 and pred.confidence == pytest.approx(e[1] / e.sum())
    assert [name for name, _ in pred.top_k] == ["c1", "c2", "c0"]
    np.testing.assert_allclose(pred.logits, [1.0, 3.0, 2.0])


def test_top_k_indices_equal_a_stable_full_sort():
    """The partition shortcut ranks exactly as `argsort(kind="stable")`: ties in index order (also across the k-th
    place), k beyond the class count, NaN rows."""
    rng = np.random.default_rng(1)
    rows = [rng.standard_normal((16, 1000)), rng.integers(0, 4, (16, 50)).astype(float), np.zeros((2, 7)),
            np.array([[1.0, np.nan, 3.0, np.nan, 0.5], [np.nan] * 5])]
    for scores in rows:
        for k in (1, 5, 9):
            expected = [np.argsort(-r, kind="stable")[:k] for r in scores]
            for got, want in zip(top_k_indices(scores, k), expected):
                np.testing.assert_array_equal(got, want)


def test_classifier_keeps_probabilities_and_reads_quantized_scores():
    clf = family(SoftmaxAdapter, entry(3), labels(3)).bind([NHWC], out(3))
    (p,) = clf.postprocess([np.array([[0.2, 0.5, 0.3]], np.float32)])
    assert p.confidence == pytest.approx(0.5)
    (q,) = clf.postprocess([np.array([[51, 153, 51]], np.uint8)])  # uint8 softmax: 0.2, 0.6, 0.2
    assert q.label == "c1" and q.confidence == pytest.approx(0.6, abs=1e-3)


@pytest.mark.parametrize("said_by", ["entry", "label set"])
def test_classifier_background_offset_for_one_extra_output(said_by):
    """Where the entry (`background`) or the label set (`background_head`, as ImageNet-1000's) says so."""
    model, names = (entry(4, background=True), labels(3)) if said_by == "entry" else \
        (entry(4), labels(3, background_head=True))
    clf = family(SoftmaxAdapter, model, names).bind([NHWC], out(4))
    (pred,) = clf.postprocess([np.array([[0.0, 0.0, 5.0, 0.0]], np.float32)])
    assert pred.label == "c1"  # index 2 = label 1 once background (index 0) is accounted for
    (bg,) = clf.postprocess([np.array([[9.0, 0.0, 0.0, 0.0]], np.float32)])
    assert bg.label == "background"
    assert clf.class_names == ("background", "c0", "c1", "c2")


def test_a_label_set_one_short_is_refused_not_shifted():
    """Issue 13.1: 999 labels for 1000 outputs used to become "background + labels", shifting every label."""
    with pytest.raises(ModelMismatchError, match=r"outputs 1000 scores but its label set 'l' has 999 labels\. "
                                                 r"Use a label set with 1000 labels, or set `background: true`"):
        family(SoftmaxAdapter, entry(1000), labels(999)).bind([NHWC], out(1000))
    with pytest.raises(ModelMismatchError, match="outputs 3 scores.*has 3 labels plus background.*with 2 labels"):
        family(SoftmaxAdapter, entry(3, background=True), labels(3)).bind([NHWC], out(3))  # the flag is a promise
    listed = family(SoftmaxAdapter, entry(4, background=True), labels(4, background=True)).bind([NHWC], out(4))
    assert listed.offset == 0  # a label set that lists background itself (TF-slim's 1001 labels) needs no offset


def test_mismatches_are_refused_with_both_values():
    with pytest.raises(ModelMismatchError, match="outputs 5 scores.*has 3 labels"):
        family(SoftmaxAdapter, entry(5), labels(3)).bind([NHWC], out(5))
    bigger = TensorSpec("x", (1, 8, 8, 3), "float32", "NHWC")
    with pytest.raises(ModelMismatchError, match="input_size 4.*8x8"):
        family(SoftmaxAdapter, entry(3), labels(3)).bind([bigger], out(3))


def test_multilabel_thresholds_and_recalibration():
    thresholds = (0.2, 0.5, 0.9)
    ml = family(MultiLabelAdapter, entry(3, "multi"), labels(3, thresholds=thresholds)).bind([NHWC], out(3))
    (pred,) = ml.postprocess([np.array([[0.3, 0.4, 0.95]], np.float32)])
    assert [name for name, _ in pred.labels] == ["c2", "c0"]  # c1 is under its 0.5 threshold
    conf = dict(pred.labels)
    assert conf["c0"] == pytest.approx((0.3 - 0.2) / 0.8 * 0.5 + 0.5)  # MindSpore demo's recalibration
    assert conf["c2"] == pytest.approx((0.95 - 0.9) / 0.1 * 0.5 + 0.5)
    (logit_pred,) = ml.postprocess([np.array([[-5.0, 5.0, 0.0]], np.float32)])  # not in 0..1: sigmoid first
    assert [name for name, _ in logit_pred.labels] == ["c1"]


def test_preprocess_layout_dtype_and_normalisation():
    img = np.full((10, 20, 3), 255, np.uint8)
    cfg = PreprocessConfig(crop_fraction=1.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    nhwc = preprocess(img, NHWC, cfg)
    assert nhwc.shape == (4, 4, 3) and nhwc.dtype == np.float32 and np.allclose(nhwc, 1.0)
    nchw = preprocess(img, TensorSpec("x", (1, 3, 4, 4), "float32", "NCHW"), cfg)
    assert nchw.shape == (3, 4, 4) and nchw.flags["C_CONTIGUOUS"]
    assert preprocess(img, TensorSpec("x", (1, 4, 4, 3), "uint8", "NHWC"), cfg).dtype == np.uint8
    int8 = preprocess(img, TensorSpec("x", (1, 4, 4, 3), "int8", "NHWC"), cfg)
    assert int8.dtype == np.int8 and int8.max() == 127


def test_short_side_resize_centre_crops_and_squash_ignores_aspect():
    # left half black, right half white: a centre crop keeps both, squash keeps both too but scaled
    img = Image.fromarray(np.concatenate([np.zeros((100, 100, 3), np.uint8), np.full((100, 100, 3), 255, np.uint8)], 1))
    short = np.asarray(resize_and_crop(img, (50, 50), PreprocessConfig(resize="short", crop_fraction=1.0)))
    assert short.shape == (50, 50, 3) and short[:, 0].max() == 0 and short[:, -1].min() == 255
    squash = np.asarray(resize_and_crop(img, (50, 50), PreprocessConfig(resize="squash", crop_fraction=1.0)))
    assert squash.shape == (50, 50, 3) and squash[:, :20].max() == 0 and squash[:, 30:].min() == 255


def test_crop_defaults_follow_the_resize_policy(tmp_path):
    """Issue 13.2: a squash (e.g. `--resize squash --input-size 32` for CIFAR) is not silently cropped 0.875."""
    from fiftyone_mslite.catalog.binding import entry_for_file

    assert PreprocessConfig().crop_fraction == 0.875 and PreprocessConfig(resize="squash").crop_fraction == 1.0
    assert PreprocessConfig(resize="squash", crop_fraction=0.9).crop_fraction == 0.9  # asked for: kept
    short = PreprocessConfig(input_size=224)
    assert short.with_changes(resize="squash").crop_fraction == 1.0  # a new policy gets its own default
    assert short.with_changes(resize="squash", crop_fraction=0.8).crop_fraction == 0.8
    stated = PreprocessConfig(resize="squash", crop_fraction=0.875)  # as resnext50's entry says
    assert stated.with_changes(resize="squash", interpolation="bicubic").crop_fraction == 0.875
    model = tmp_path / "m.ms"
    model.write_bytes(b"not loaded here")
    assert entry_for_file(model, "cifar10", {"resize": "squash"}).preprocess.crop_fraction == 1.0


def test_bgr_channel_order_reverses_channels_before_normalising():
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = 255  # pure red
    cfg = PreprocessConfig(crop_fraction=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    rgb = preprocess(img, NHWC, cfg)
    bgr = preprocess(img, NHWC, cfg.with_changes(channel_order="BGR"))
    assert rgb[0, 0].tolist() == [1.0, 0.0, 0.0] and bgr[0, 0].tolist() == [0.0, 0.0, 1.0]
    assert "channel_order" not in cfg.to_dict()  # run settings recorded before the field existed still match
    assert cfg.with_changes(channel_order="BGR").to_dict()["channel_order"] == "BGR"


@pytest.mark.parametrize("layout, dtype, order", [("NHWC", "float32", "RGB"), ("NCHW", "float32", "RGB"),
                                                  ("NHWC", "float32", "BGR"), ("NHWC", "uint8", "RGB"),
                                                  ("NCHW", "int8", "RGB")])
def test_writing_into_a_batch_row_gives_the_same_tensor(layout, dtype, order):
    """annotate decodes straight into its batch buffer: the row must equal the tensor made on its own."""
    shape = (1, 6, 5, 3) if layout == "NHWC" else (1, 3, 6, 5)
    spec = TensorSpec("x", shape, dtype, layout)
    cfg = PreprocessConfig(resize="squash", crop_fraction=1.0, channel_order=order)
    image = np.random.default_rng(0).integers(0, 256, (17, 11, 3)).astype(np.uint8)
    batch = np.full((3, *shape[1:]), 7, dtype)
    alone = preprocess(image, spec, cfg)
    row = preprocess(image, spec, cfg, out=batch[1])
    assert row is batch[1] or np.shares_memory(row, batch)
    np.testing.assert_array_equal(batch[1], alone)
    assert (batch[0] == 7).all() and (batch[2] == 7).all()  # nothing else touched


def test_the_family_decides_the_task_and_an_entry_saying_otherwise_is_refused():
    from fiftyone_mslite.catalog.registry import Catalog

    cat = Catalog(adapters={"classifier": SoftmaxAdapter, "multilabel": MultiLabelAdapter})
    bound = cat.bound_adapter(entry(3, "multi"), labels(3), [NHWC], out(3))
    assert bound.task == "multi" and bound.prediction is MultiLabelPrediction
    contradicting = entry(3).model_copy(update={"adapter": "multilabel"})
    with pytest.raises(ModelMismatchError, match="says task 'single', but its adapter 'multilabel' predicts task"):
        cat.bound_adapter(contradicting, labels(3), [NHWC], out(3))
