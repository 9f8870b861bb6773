"""annotate's decode + resize path against the reference pre-processing on the 1000 ImageNet sample images (real
MindSpore Lite worker): the bar every cheaper decode must pass (issue 23, benchmarks/decode.py) — the same top-1
class on >= 99.5 % of the images and top-1 accuracy within 0.2 points, for a float and a (dequantized) quantized
model."""
import cv2
import numpy as np
import pytest
from decode import AGREEMENT_BAR, TOP1_BAR, agreement
from PIL import Image

from fiftyone_mslite.adapters.images import open_rgb
from fiftyone_mslite.adapters.preprocessing import resize_and_crop
from fiftyone_mslite.classifier import load_classifier
from fiftyone_mslite.integration.annotation import DEFAULT_DRAFT

REFERENCE = "Pillow (today)"  # decode.agreement's reference key; here the reference pre-processing below


def _annotate_pixels(path, fit):
    return np.asarray(resize_and_crop(open_rgb(path, fit, draft=DEFAULT_DRAFT), *fit))


def _reference_pixels(path, fit):
    """torchvision's recipe written out, independent of our code: FiftyOne's decoder (cv2.imread, full size),
    a bilinear resize of the short side to input / crop fraction, then the centre crop."""
    (h, w), cfg = fit
    image = Image.fromarray(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
    short = round(min(h, w) / cfg.crop_fraction)
    scale = short / min(image.size)
    rw, rh = max(w, round(image.width * scale)), max(h, round(image.height * scale))
    left, top = (rw - w) // 2, (rh - h) // 2
    return np.asarray(image.resize((rw, rh), Image.BILINEAR).crop((left, top, left + w, top + h)))


@pytest.mark.parametrize("model", ["tv_mobilenet", "coral-mobilenet-v2-quant"])
def test_annotates_decode_agrees_with_the_reference_preprocessing(model, imagenet_dir, request):
    name = request.getfixturevalue(model) if model == "tv_mobilenet" else model
    files = sorted(imagenet_dir.glob("*.JPEG"))
    truth = [f.name.split("_")[0] for f in files]
    assert len(files) == 1000
    with load_classifier(name) as clf:
        result = agreement(clf, files, truth, {REFERENCE: _reference_pixels, "annotate": _annotate_pixels})
    a = result["annotate"]
    assert a["agree_pct"] >= AGREEMENT_BAR, a
    assert abs(a["top1_delta"]) <= TOP1_BAR, a
    assert result[REFERENCE]["top1_pct"] > 80, result  # the models really classify these images


def test_the_draft_path_shrinks_only_what_the_resize_allows(imagenet_dir, tv_mobilenet):
    with load_classifier(tv_mobilenet) as clf:
        fit = clf.fit
    shrunk = 0
    for f in sorted(imagenet_dir.glob("*.JPEG"))[:200]:
        full, draft = open_rgb(f, fit, draft=False), open_rgb(f, fit, draft=True)
        assert min(draft.size) >= round(224 / 0.875) or draft.size == full.size  # never below the resize's size
        shrunk += draft.size != full.size
    assert shrunk > 0
