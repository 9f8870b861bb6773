"""The comparison's statistics on hand-made cases: intervals, histogram, flip order, stratified draws."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fiftyone_mslite.errors import QuantizationError
from fiftyone_mslite.integration.compare import (
    OTHER,
    TO_RIGHT,
    TO_WRONG,
    Flip,
    class_deltas,
    confidence_histogram,
    order_flips,
    paired_delta_ci,
    wilson,
)
from fiftyone_mslite.integration.quantization import default_name, stratified_pick
from fiftyone_mslite.modelfiles.quantize import CalibrationSet, QuantSettings, config_text


def test_wilson_matches_the_textbook_value_and_stays_inside_0_1():
    low, high = wilson(8, 10)  # Wilson 95 % for 8/10: 0.4902 .. 0.9433
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 5)[0] == 0.0 and 0 < wilson(0, 5)[1] < 0.6
    assert wilson(5, 5)[1] == pytest.approx(1.0) and 0.4 < wilson(5, 5)[0] < 1


def test_paired_delta_ci_no_change_is_a_point_and_a_drop_excludes_zero():
    same = np.array([True, False, True, True])
    assert paired_delta_ci(same, same) == (0.0, 0.0)
    a = np.ones(200, bool)
    b = a.copy()
    b[:40] = False  # 20 % of the samples flipped right -> wrong
    low, high = paired_delta_ci(a, b)
    assert low <= -0.2 <= high and high < 0
    assert paired_delta_ci(a, b) == (low, high)  # seeded: reproducible


def test_confidence_histogram_bins_shifts_by_tenths_and_clips():
    hist = confidence_histogram(np.array([-1.0, -0.05, 0.0, 0.04, 0.55, 2.0]))
    assert len(hist["edges"]) == 21 and len(hist["counts"]) == 20
    counts = dict(zip(hist["edges"], hist["counts"]))
    assert counts[-1.0] == 1 and counts[-0.1] == 1 and counts[0.0] == 2 and counts[0.5] == 1 and counts[0.9] == 1
    assert sum(hist["counts"]) == 6


def _flip(i, kind, a_conf, b_conf):
    return Flip(str(i), f"/img/{i}.jpg", kind, "cat", "cat" if kind == TO_WRONG else "dog",
                "dog" if kind == TO_WRONG else "cat", a_conf, b_conf)


def test_flips_right_to_wrong_first_then_wrong_to_right_then_others_largest_shift_first():
    flips = [_flip(1, OTHER, 0.5, 0.5), _flip(2, TO_RIGHT, 0.5, 0.6), _flip(3, TO_WRONG, 0.9, 0.8),
             _flip(4, TO_WRONG, 0.9, 0.3), _flip(5, TO_RIGHT, 0.2, 0.9)]
    assert [f.id for f in order_flips(flips)] == ["4", "3", "5", "2", "1"]


def test_class_deltas_largest_drop_first_with_counts():
    gt = np.array(["a"] * 4 + ["b"] * 4, dtype=object)
    a_right = np.array([1, 1, 1, 1, 1, 0, 1, 0], bool)
    b_right = np.array([1, 1, 0, 0, 1, 1, 1, 0], bool)
    rows = class_deltas(gt, a_right, b_right)
    assert [r.label for r in rows] == ["a", "b"]
    assert rows[0].a_accuracy == 1.0 and rows[0].b_accuracy == 0.5 and rows[0].delta == -0.5
    assert rows[1].delta == 0.25 and rows[1].samples == 4
    assert rows[0].delta_ci[0] <= -0.5 <= rows[0].delta_ci[1]


def test_stratified_pick_spreads_over_classes_and_is_seeded():
    labels = ["a"] * 50 + ["b"] * 5 + ["c"] * 20
    picked = stratified_pick(labels, 12)
    counts = {c: sum(labels[i] == c for i in picked) for c in "abc"}
    assert counts == {"a": 4, "b": 4, "c": 4} and len(set(picked)) == 12
    assert stratified_pick(labels, 12) == picked
    assert sorted(stratified_pick(labels, 100)) == list(range(75))  # asking for more gives all, once
    assert len(stratified_pick([None] * 7, 3)) == 3


def test_quant_settings_config_text_uses_2_0_0_keys():
    weight = config_text(QuantSettings("weight", bits=4), None)
    assert "quant_type=WEIGHT_QUANT" in weight and "bit_num=4" in weight and "min_quant_weight_channel=16" in weight
    assert "[data_preprocess_param]" not in weight
    full = config_text(QuantSettings("full"), CalibrationSet("input", Path("/cal"), 7))
    for line in ("quant_type=FULL_QUANT", "calibrate_path=input:/cal", "calibrate_size=7", "input_type=BIN",
                 "activation_quant_method=MAX_MIN", "bias_correction=true", "per_channel=true"):
        assert line in full.splitlines()
    with pytest.raises(QuantizationError, match="8-bit only"):
        QuantSettings("full", bits=4)
    with pytest.raises(QuantizationError, match="mode must be"):
        QuantSettings("half")
    with pytest.raises(QuantizationError, match="needs calibration"):
        config_text(QuantSettings("full"), None)
    assert default_name("m", "full", 8) == "m-int8" and default_name("m", "weight", 4) == "m-w4"


def test_weight_dequantization_uses_the_runtimes_per_channel_formula():
    """What a quantized model is measured by here (the bridge's decode of its weights) is the runtime's formula."""
    from fiftyone_mslite.modelfiles.ms_weights import QuantTensor, WeightDecodeError, dequantize

    q = np.array([[1, -2], [3, 4]], np.int8)
    params = [{"scale": 0.5, "zero_point": 1, "var_corr": 2.0, "mean_corr": 0.25, "num_bits": 8},
              {"scale": 0.1, "zero_point": 0, "var_corr": 50.0, "mean_corr": 0.0, "num_bits": 8}]  # > 10: ignored
    out = dequantize(QuantTensor("t", q.tobytes(), 32, (2, 2), params), 0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.reshape(-1), [0.25, -2.75, 0.3, 0.4], rtol=1e-6)
    per_tensor = QuantTensor("t", q.tobytes(), 32, (4,), [{"scale": 2.0, "zero_point": 1, "num_bits": 8}])
    np.testing.assert_allclose(dequantize(per_tensor, 0), [0, -6, 4, 6])
    with pytest.raises(WeightDecodeError, match="3 per-channel parameters"):
        dequantize(QuantTensor("t", q.tobytes(), 32, (2, 2), params + params[:1]), 0)
