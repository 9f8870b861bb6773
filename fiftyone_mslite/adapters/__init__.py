"""Model families (adapters) and the plugin contract."""
from .base import Adapter, ClassPrediction, ModelMismatchError, MultiLabelPrediction
from .builtin import Classifier, MultiLabel
from .hookspecs import hookimpl

__all__ = ["Adapter", "Classifier", "MultiLabel", "ClassPrediction", "MultiLabelPrediction", "ModelMismatchError",
           "hookimpl"]
