"""The input normalisation TFLite files declare in their TFLite Support metadata (real files from the mirror)."""
from __future__ import annotations

import pytest

from fiftyone_mslite.errors import ModelFileError
from fiftyone_mslite.modelfiles.tflite_metadata import Normalization, tflite_normalization

CORAL = "raw.githubusercontent.com/google-coral/test_data/master"
SUPPORT = ("raw.githubusercontent.com/tensorflow/tflite-support/master/tensorflow_lite_support/cc/test/testdata/"
           "task/vision")


@pytest.mark.parametrize("path, declared", [
    (f"{CORAL}/mobilenet_v2_1.0_224_quant.tflite", Normalization((127.5,), (127.5,))),
    (f"{CORAL}/mobilenet_v1_0.25_128_quant.tflite", Normalization((127.5,), (127.5,))),
    (f"{SUPPORT}/automl_labeler_model.tflite", Normalization((0.0,), (1.0,))),
    (f"{SUPPORT}/mobilenet_v1_0.25_224_1_default_1.tflite", None),  # "TOCO Converted": no metadata at all
])
def test_reads_the_declared_normalisation(shared_dir, path, declared):
    assert tflite_normalization(shared_dir / "mirror" / path) == declared


def test_unit_scale_is_the_catalogs():
    assert Normalization((127.5,), (127.5,)).unit_scale() == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert Normalization((0.0,), (1.0,)).unit_scale() == ((0.0, 0.0, 0.0), (0.003922, 0.003922, 0.003922))
    assert Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)).unit_scale() == (
        (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert Normalization((127.5,), (127.5,)).describe() == "(x - 127.5) / 127.5 on 0..255 pixels"
    with pytest.raises(ValueError, match="std"):
        Normalization((0.0,), (0.0,)).unit_scale()


def test_a_damaged_metadata_buffer_is_one_error(shared_dir, tmp_path):
    source = (shared_dir / "mirror" / CORAL / "mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    start = source.index(b"M001") - 4  # the metadata FlatBuffer: its root offset, then the identifier
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(source[:start] + b"\xff\xff\xff\x7f" + source[start + 4:])
    with pytest.raises(ModelFileError, match=r"broken.tflite: unreadable TFLite metadata .*--mean and --std"):
        tflite_normalization(broken)
