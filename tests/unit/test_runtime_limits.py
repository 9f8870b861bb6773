"""Runtime checks that need no worker: inputs without a common batch dim, the declared-input size cap, and the
duration/size settings behind the deadlines."""
from __future__ import annotations

import numpy as np
import pytest

from fiftyone_mslite.runtime import settings
from fiftyone_mslite.runtime.errors import InputMismatchError, ModelFileError
from fiftyone_mslite.runtime.tensors import TensorSpec, check_input_size, check_inputs, concrete_shape

IMAGE = TensorSpec("image", (1, 64, 64, 3), "float32", "NHWC")
VECTOR = TensorSpec("scale", (16,), "float32", None)


def test_inputs_without_a_common_batch_dim_run_as_one_call_at_their_shapes():
    arrays, batch = check_inputs([IMAGE, VECTOR, VECTOR], [np.zeros((1, 64, 64, 3), np.float32),
                                                           np.ones(16, np.float32), np.ones(16, np.float32)], "m.ms")
    assert batch == 1 and [a.shape for a in arrays] == [(1, 64, 64, 3), (16,), (16,)]
    with pytest.raises(InputMismatchError, match=r"different batch sizes \(2 vs 16\).*exactly their declared shape "
                                                 r"\(image \(1, 64, 64, 3\), scale \(16\)\)"):
        check_inputs([IMAGE, VECTOR], [np.zeros((2, 64, 64, 3), np.float32), np.ones(16, np.float32)], "m.ms")
    dynamic = TensorSpec("x", (-1, 3), "float32", None)
    with pytest.raises(InputMismatchError, match=r"different batch sizes \(2 vs 4\)"):
        check_inputs([dynamic, dynamic], [np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32)], "m.ms")


def test_declared_inputs_over_the_cap_are_refused_in_one_line(monkeypatch):
    huge = TensorSpec("x", (65536, 224, 224, 3), "float32", "NHWC")
    with pytest.raises(ModelFileError) as caught:
        check_input_size([huge], [huge.shape], "huge.ms")
    assert str(caught.value).startswith("huge.ms: input 'x' float32 (65536, 224, 224, 3) needs 36.75 GiB")
    assert "\n" not in str(caught.value)
    check_input_size([IMAGE, VECTOR], [IMAGE.shape, VECTOR.shape], "m.ms")  # 48 KiB: fine
    monkeypatch.setenv("FIFTYONE_MSLITE_MAX_INPUT_SIZE", "40K")
    with pytest.raises(ModelFileError, match=r"needs 48 KiB for one call \(48.06 KiB with every input\), over the "
                                             r"FIFTYONE_MSLITE_MAX_INPUT_SIZE limit of 40 KiB"):
        check_input_size([IMAGE, VECTOR], [IMAGE.shape, VECTOR.shape], "m.ms")
    assert concrete_shape(TensorSpec("d", (-1, 8, -1), "float32", None), 4) == (4, 8, 1)


@pytest.mark.parametrize("value", ["abc", "0", "-3", "inf", "nan"])
def test_bad_durations_are_one_line_errors(monkeypatch, value):
    monkeypatch.setenv("FIFTYONE_MSLITE_CALL_TIMEOUT", value)
    with pytest.raises(ValueError, match=rf"FIFTYONE_MSLITE_CALL_TIMEOUT='{value}' is not a duration"):
        settings.seconds("FIFTYONE_MSLITE_CALL_TIMEOUT")


def test_durations_and_sizes_with_their_defaults(monkeypatch):
    monkeypatch.delenv("FIFTYONE_MSLITE_CALL_TIMEOUT", raising=False)
    assert settings.seconds("FIFTYONE_MSLITE_CALL_TIMEOUT") == 120.0
    monkeypatch.setenv("FIFTYONE_MSLITE_CALL_TIMEOUT", "2.5")
    assert settings.seconds("FIFTYONE_MSLITE_CALL_TIMEOUT") == 2.5
    monkeypatch.setenv("FIFTYONE_MSLITE_DOWNLOAD_MIN_RATE", "64KiB")
    assert settings.size("FIFTYONE_MSLITE_DOWNLOAD_MIN_RATE") == 64 << 10
    monkeypatch.setenv("FIFTYONE_MSLITE_DOWNLOAD_MIN_RATE", "fast")
    with pytest.raises(ValueError, match="FIFTYONE_MSLITE_DOWNLOAD_MIN_RATE='fast' is not a size"):
        settings.size("FIFTYONE_MSLITE_DOWNLOAD_MIN_RATE")
