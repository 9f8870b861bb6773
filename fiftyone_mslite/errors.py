"""Every public error of fiftyone-mslite, in one place, under one root (`MSLiteError`).

Each keeps a builtin mixin (`ValueError` for bad input, `RuntimeError` for failures of the machinery) so that
callers who catch those keep working. Messages say what failed, on which file or sample, and what to do; the
CLI maps all of them to one line and an exit code (`cli.ErrorMappingGroup`).
"""
from __future__ import annotations

from dataclasses import dataclass

from .runtime.errors import (
    ConversionError,
    InputMismatchError,
    ModelFileError,
    MSLiteError,
    RuntimeUnavailableError,
    WorkerCrashedError,
    WorkerTimeoutError,
)

__all__ = [
    "MSLiteError", "ModelFileError", "InputMismatchError", "RuntimeUnavailableError", "WorkerCrashedError",
    "WorkerTimeoutError", "ConversionError", "BenchmarkDataError", "MsInspectError", "OnnxFixError",
    "TFLiteDequantizeError", "ModelBridgeError", "LegacyUpgradeError",
    "TrainingGraphError", "NotATrainingGraphError", "LossInputNotFoundError", "UnknownOutputTensorError",
    "EmbeddingNotFoundError", "QuantizationError",
    "DownloadError", "ChecksumMismatch", "OfflineError", "DownloadTooLarge",
    "CatalogError", "ModelMismatchError",
    "ImageDecodeError", "DatasetError", "DatasetImportError", "DatabaseError", "FieldLockedError", "AppAccessError",
    "DemoError", "EngineUnavailableError", "Failed", "Interrupted", "CalibrationError",
]


# -- model files (modelfiles/) --------------------------------------------------------------------------------
class MsInspectError(ModelFileError):
    """A file that is not a readable MindSpore Lite ``.ms`` model; the message names file, finding and fix."""


class OnnxFixError(ModelFileError):
    """The ONNX file cannot be read, or needs a change that would alter what the model computes."""


class TFLiteDequantizeError(ModelFileError):
    """A quantized TFLite model cannot be rewritten as float32 (unsupported tensor or quantization)."""


class ModelBridgeError(ModelFileError):
    """A ``.ms`` the bridge cannot make runnable on MindSpore Lite 2.0.0; the message says exactly why."""


class LegacyUpgradeError(ModelBridgeError):
    """A legacy-schema (v0) ``.ms`` cannot be upgraded: unreadable, unsupported ops, or nothing to do."""


class TrainingGraphError(ModelFileError):
    """An on-device training ``.ms`` cannot be cut to its inference graph (the three cases below)."""


class NotATrainingGraphError(TrainingGraphError):
    """The file holds no optimizer, gradient or loss node: there is no training part to cut away."""


class LossInputNotFoundError(TrainingGraphError):
    """A training graph whose loss function's network input cannot be found; naming the output resolves it."""


class UnknownOutputTensorError(TrainingGraphError):
    """The output tensor asked for is not produced by the network (inference) part; the message lists candidates."""


class EmbeddingNotFoundError(ModelFileError):
    """A model has no tensor that can serve as its embedding (none found, or the named one is absent)."""


class BenchmarkDataError(MSLiteError, ValueError):
    """A `benchmark` input or golden-output file does not fit the model (count, size, shape) or is unreadable."""


class QuantizationError(MSLiteError, ValueError):
    """Post-training quantization cannot run: a source the converter cannot take, no calibration images, bad
    settings, or the converter failed; nothing was registered or left on disk."""


# -- downloads ------------------------------------------------------------------------------------------------
class DownloadError(MSLiteError, RuntimeError):
    """A file could not be fetched; the message names the URL, what went wrong and what to do."""


class ChecksumMismatch(DownloadError):
    """The fetched bytes do not hash to the expected sha256 (corrupt transfer, stale mirror or wrong pin)."""


class OfflineError(DownloadError):
    """Offline mode is on and neither the cache nor a mirror directory has the file."""


class DownloadTooLarge(DownloadError):
    """The file is over its kind's size cap (announced or while streaming); the message says how to raise it."""


# -- catalog and adapters -------------------------------------------------------------------------------------
class CatalogError(MSLiteError, ValueError):
    """A catalog file or entry is invalid, or a name is unknown; the message names file, entry and field."""


class ModelMismatchError(MSLiteError, ValueError):
    """The loaded model contradicts its catalog entry (input size, output size vs labels)."""


class ImageDecodeError(MSLiteError, ValueError):
    """An image file cannot be decoded (missing, empty, truncated, not an image, too large)."""


# -- the FiftyOne layer ---------------------------------------------------------------------------------------
class DatasetError(MSLiteError, ValueError):
    """A dataset or field cannot be used as asked (unknown, empty, wrong label type, missing logits)."""


class DatasetImportError(DatasetError):
    """The directory cannot be imported as asked; the message names the offending file or folder."""


class DatabaseError(MSLiteError, RuntimeError):
    """The FiftyOne database went away mid-run; what was saved before stays saved."""


class FieldLockedError(DatasetError):
    """Another annotate run is writing the same field right now."""


class AppAccessError(MSLiteError, ValueError):
    """The App asked for a model, label file or URL the server operator has not allowed (docs/security.md)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a job after `saved` results were written; `summary` says what else it did, so the caller
    can report what was kept and how to resume. A KeyboardInterrupt, not an MSLiteError: `except Exception`
    must never swallow Ctrl-C."""

    def __init__(self, saved: int, summary: object):
        super().__init__(f"interrupted after {saved} saved")
        self.saved, self.summary = saved, summary


class DemoError(MSLiteError, RuntimeError):
    """Something the demo needs is missing; the message says what and how to provide it."""


class EngineUnavailableError(MSLiteError, RuntimeError):
    """An optional annotate engine (Ray) is not installed; the message says what to install."""


@dataclass(frozen=True)
class Failed:
    """A per-item failure returned as a value ("result or Failed"), where one bad item must not stop a batch."""

    reason: str



class CalibrationError(MSLiteError, ValueError):
    """Confidence calibration, thresholds or prediction sets cannot be computed from what was given (no ground
    truth, no stored logits, too few samples, labels outside the model's classes); the message says what to do."""
