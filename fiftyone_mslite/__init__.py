"""MindSpore Lite image classifiers as first-class FiftyOne models.

    import fiftyone_mslite as fom
    model = fom.load_model("coral-mobilenet-v2-quant")  # a FiftyOne Model: dataset.apply_model(model, "predictions")
    fom.annotate(dataset, model, "predictions")    # the fast path
    fom.evaluate(dataset, "predictions", "ground_truth", top_k=5)

Attributes load lazily so that `fiftyone_mslite.runtime` stays importable on the worker's Python 3.7 and
`import fiftyone` is only paid by what needs it. (This file must stay Python-3.7 compatible.)
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "fiftyone_mslite.integration.model",
    "MSLiteModel": "fiftyone_mslite.integration.model",
    "MSLiteModelConfig": "fiftyone_mslite.integration.model",
    "annotate": "fiftyone_mslite.integration.annotation",
    "evaluate": "fiftyone_mslite.integration.evaluation",
    "evaluate_multilabel": "fiftyone_mslite.integration.evaluation",
    "run_brain": "fiftyone_mslite.integration.brain",
    "calibrate_confidence": "fiftyone_mslite.integration.confidence",
    "tune_thresholds": "fiftyone_mslite.integration.confidence",
    "conformal_sets": "fiftyone_mslite.integration.confidence",
    "confidence_view": "fiftyone_mslite.integration.views",
    "save_low_confidence_view": "fiftyone_mslite.integration.views",
    "import_directory": "fiftyone_mslite.integration.datasets",
    "quantize": "fiftyone_mslite.integration.quantization",
    "compare": "fiftyone_mslite.integration.compare",
    "load_classifier": "fiftyone_mslite.classifier",
    "convert_model": "fiftyone_mslite.modelfiles.convert",
    "open_model": "fiftyone_mslite.runtime",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fiftyone_mslite' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
