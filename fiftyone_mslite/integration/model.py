"""MindSpore Lite classifiers as FiftyOne models: `dataset.apply_model(load_model("name"), ...)`.

A Config + Model pair in the style of FiftyOne's own integrations (`fiftyone/utils/*.py`), so the model
also loads through `fiftyone.core.models.load_model({"type": "fiftyone_mslite.integration.model.MSLiteModel",
"config": {...}})`. Turning predictions into labels goes through `MSLiteModel.to_labels` (the converters of
`labels.py`) and nowhere else, which is what keeps `annotate()` and `apply_model()` label-for-label identical.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fiftyone.core.config as foc
import fiftyone.core.labels as fol
import fiftyone.core.models as fom
import numpy as np

from ..adapters.calibrated import Calibrated
from ..classifier import Classifier, load_classifier
from ..errors import Failed, MSLiteError
from ..pipeline import file_preparer
from .labels import LabelSettings, converter

logger = logging.getLogger(__name__)


class MSLiteModelConfig(foc.Config):
    """Settings of an `MSLiteModel`.

    model: catalog name or path of a model file (.ms/.mindir, or an ONNX/TFLite source converted once and cached);
    labels: label set name or label file (required for a path, overrides the catalog's otherwise); threads/backend:
    MindSpore Lite runtime; streams: "auto" (one session with `threads` threads until batches have kept it busy for
    2 s, then `threads` single-threaded sessions, each running whole sub-batches: fastest on few cores) or a number;
    confidence_thresh: below it a single-label prediction is None and multi-label classes are dropped (apply_model
    hands its own `confidence_thresh` to this field); top_k: at most this many classes per multi-label prediction
    and in stored top-k lists; store_top_k: add `top_k_labels`/`top_k_confidences` to single-label predictions;
    calibrated: apply the model's stored confidence calibration (temperature/vector scaling for single-label, tuned
    per-class thresholds for multi-label; docs/calibration.md); overrides: catalog pre-processing overrides
    (input_size, mean, std, resize, ...).
    """

    def __init__(self, d: dict[str, Any]):
        self.model = str(self.parse_raw(d, "model"))
        self.labels = self.parse_string(d, "labels", default=None)
        self.threads = self.parse_int(d, "threads", default=2)
        self.streams = self.parse_raw(d, "streams", default="auto")
        if self.streams != "auto" and not (isinstance(self.streams, int) and self.streams >= 1):
            raise ValueError(f"streams must be 'auto' or a positive integer, got {self.streams!r}")
        self.backend = self.parse_string(d, "backend", default=None)
        self.confidence_thresh = self.parse_number(d, "confidence_thresh", default=None)
        self.top_k = self.parse_int(d, "top_k", default=5)
        self.store_top_k = self.parse_bool(d, "store_top_k", default=False)
        self.calibrated = self.parse_bool(d, "calibrated", default=False)
        self.overrides = self.parse_dict(d, "overrides", default={})


class MSLiteModel(fom.SamplesMixin, fom.EmbeddingsMixin, fom.LogitsMixin, fom.Model):
    """FiftyOne image model backed by a `Classifier`; its embeddings are the penultimate tensor, an extra output
    of the same inference as the logits (`get_embeddings` after `predict` costs nothing).

    The runtime session opens at construction (so a bad model fails at load time), closes on `__exit__`
    (apply_model enters the model as a context) and reopens on the next prediction.

    Images come from the samples' files, read by annotate's decoder: FiftyOne's apply_model reads each image
    itself with OpenCV (at full size, truncated files accepted) before a non-torch model sees it, and only
    torch DataLoader models load their own inputs. As a `SamplesMixin` model this one is also handed the
    samples, so it decodes their files the way `annotate` does (same failures, bounded memory, FIFOs
    refused) and drops the pixels FiftyOne read. Called without samples, it takes the images it is given.

    With samples, each one stands alone, as in `annotate`: a file that does not decode, or a sample whose
    inference fails on its own, gets no label but `{"error": why}`, which apply_model stores in
    `<label_field>_error`; the others of its batch are labeled. (A file that FiftyOne's own OpenCV read fails on
    never reaches the model: apply_model drops its batch with a warning. `annotate` has no such step.)
    """

    def __init__(self, config: MSLiteModelConfig):
        fom.LogitsMixin.__init__(self)
        fom.SamplesMixin.__init__(self)
        self.config = config
        self._preprocess = True
        self._classifier: Classifier | None = None
        self._last_embeddings: np.ndarray | None = None
        clf = self.classifier
        self.name, self.task, self.labels = clf.entry.name, clf.task, clf.labels
        self._calibration: Calibrated | None = None
        self.calibration  # noqa: B018 - a model without a stored calibration fails at load time

    @property
    def classifier(self) -> Classifier:
        if self._classifier is None:
            self._classifier = load_classifier(**self.classifier_args())
        return self._classifier

    def classifier_args(self) -> dict[str, Any]:
        """`load_classifier` keyword arguments of this model's classifier (also how a Ray actor opens it)."""
        c = self.config
        return {"name_or_path": c.model, "labels": c.labels, "threads": c.threads, "backend": c.backend,
                "streams": c.streams, **c.overrides}

    @property
    def calibration(self) -> Calibrated | None:
        """The stored calibration applied to predictions when `config.calibrated` (else None)."""
        if not self.config.calibrated:
            return None
        if self._calibration is None:
            clf = self.classifier
            self._calibration = Calibrated(clf.entry.name, clf.task, clf.entry.facts, clf.class_names,
                                           clf.labels.synsets)
        return self._calibration

    @property
    def classes(self) -> list[str]:
        """The class of each output index (logit order; a background output included), as FiftyOne's models list
        them; `annotate` records them as `dataset.classes[label_field]`."""
        return list(self.classifier.class_names)

    @property
    def label_type(self) -> type[fol.Label]:
        return converter(self.classifier.prediction_kind).label_type

    @property
    def media_type(self) -> str:
        return "image"

    @property
    def has_logits(self) -> bool:
        return True

    @property
    def ragged_batches(self) -> bool:
        return False  # every image is resized to the model input inside `transforms`

    @property
    def transforms(self):
        """RGB uint8 HWC (any size) → one model input tensor."""
        return self.classifier.prepare

    @property
    def preprocess(self) -> bool:
        return self._preprocess

    @preprocess.setter
    def preprocess(self, value: bool) -> None:
        self._preprocess = value

    def predict(self, arg: np.ndarray, sample: Any = None) -> fol.Label | None:
        return self.predict_all([arg], samples=None if sample is None else [sample])[0]

    def predict_all(self, args: Sequence[np.ndarray],
                    samples: Sequence[Any] | None = None) -> list[fol.Label | dict[str, str] | None]:
        clf = self.classifier
        if samples is None or not self._preprocess:
            outputs = self._run(args)
            self._last_embeddings = clf.embeddings(outputs) if clf.has_embeddings else None
            return self.to_labels(clf.postprocess(outputs))
        prepare = file_preparer(clf, draft=False)
        prepared = [prepare(sample.filepath) for sample in samples]
        ready = [k for k, tensor in enumerate(prepared) if not isinstance(tensor, Failed)]
        outputs, failed = self._infer_each([prepared[k] for k in ready], [samples[k].filepath for k in ready])
        for k, why in failed.items():
            prepared[ready[k]] = Failed(why)
        inferred = [k for j, k in enumerate(ready) if j not in failed]
        results: list[fol.Label | dict[str, str] | None] = [None] * len(samples)
        self._last_embeddings = None
        if inferred:
            for k, label in zip(inferred, self.to_labels(clf.postprocess(outputs))):
                results[k] = label
            if clf.has_embeddings:  # rows of failed samples are NaN
                self._last_embeddings = np.full((len(samples), clf.embedding_size), np.nan, np.float32)
                self._last_embeddings[inferred] = clf.embeddings(outputs)
        for k, tensor in enumerate(prepared):
            if isinstance(tensor, Failed):
                logger.warning("%s: no label (%s)", samples[k].filepath, tensor.reason)
                results[k] = {"error": tensor.reason}
        return results

    def _infer_each(self, tensors: list[np.ndarray], paths: list[str]) -> tuple[list[np.ndarray], dict[int, str]]:
        """Raw outputs of the inferable tensors (rows in order) and why the others failed (by index): the batch at
        once, and if that fails, one by one, so that only the samples that fail on their own are lost."""
        if not tensors:
            return [], {}
        session = self.classifier.session
        try:
            return session.run(np.stack(tensors)), {}
        except MSLiteError:
            pass  # one sample may be the cause: try each alone
        rows: list[list[np.ndarray]] = []
        failed: dict[int, str] = {}
        for k, (tensor, path) in enumerate(zip(tensors, paths)):
            try:
                rows.append(session.run(tensor[None]))
            except MSLiteError as exc:
                failed[k] = f"{path}: inference failed: {exc}"
        outputs = [np.concatenate(parts) for parts in zip(*rows)] if rows else []
        return outputs, failed

    def _run(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        clf = self.classifier
        return clf.session.run(np.stack([clf.prepare(a) for a in args] if self._preprocess else list(args)))

    @property
    def has_embeddings(self) -> bool:
        return self.classifier.has_embeddings

    @property
    def embedding_size(self) -> int | None:
        return self.classifier.embedding_size

    def get_embeddings(self) -> np.ndarray:
        """Embeddings of the last `predict`/`predict_all` batch, (batch, embedding_size)."""
        if self._last_embeddings is None:
            self.classifier.require_embeddings()
            raise ValueError("get_embeddings() is available after predict() or predict_all()")
        return self._last_embeddings

    def embed(self, arg: np.ndarray) -> np.ndarray:
        return self.embed_all([arg])[0]

    def embed_all(self, args: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings only: the same inference, without turning logits into labels."""
        clf = self.classifier
        clf.require_embeddings()
        return clf.embeddings(self._run(args))

    def to_labels(self, predictions: Sequence[Any]) -> list[fol.Label | None]:
        """Adapter predictions → FiftyOne labels, honouring calibration, threshold, logits and top-k settings."""
        if self.calibration is not None:
            predictions = self.calibration.apply(list(predictions))
        c = self.config
        settings = LabelSettings(c.confidence_thresh, c.top_k, c.store_top_k, self.store_logits)
        convert = converter(self.classifier.prediction_kind).convert
        return [convert(p, settings) for p in predictions]

    def settings(self) -> dict[str, Any]:
        """Everything that decides this model's labels (identifies a run of it for resuming)."""
        c = self.config
        return {**self.classifier.identity(), "confidence_thresh": c.confidence_thresh, "top_k": c.top_k,
                "store_top_k": c.store_top_k, "store_logits": self.store_logits,
                **({"calibration": self.calibration.identity()} if self.calibration is not None else {})}

    def close(self) -> None:
        if self._classifier is not None:
            self._classifier.close()
            self._classifier = None

    def __enter__(self) -> MSLiteModel:
        self.classifier  # noqa: B018 - reopen after a previous __exit__
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


_CONFIG_KEYS = ("labels", "threads", "streams", "backend", "confidence_thresh", "top_k", "store_top_k", "calibrated")


def load_model(name_or_path: str | Path, **overrides: Any) -> MSLiteModel:
    """A catalog model name or a local model file (.ms/.mindir, or ONNX/TFLite converted once; then pass `labels`)
    as a FiftyOne model.

    Keyword arguments are `MSLiteModelConfig` fields; any others are pre-processing overrides.
    """
    d: dict[str, Any] = {"model": str(name_or_path), "overrides": {}}
    for key, value in overrides.items():
        (d if key in _CONFIG_KEYS else d["overrides"])[key] = value
    return MSLiteModel(MSLiteModelConfig(d))
