"""Model families (adapters): pixels → model tensor → predictions, one class per family."""
from ..hooks import hookimpl
from .base import Adapter, ClassPrediction, MultiLabelPrediction
from .multilabel import MultiLabelAdapter
from .preprocessing import PreprocessConfig
from .softmax import SoftmaxAdapter

__all__ = ["Adapter", "SoftmaxAdapter", "MultiLabelAdapter", "ClassPrediction", "MultiLabelPrediction",
           "PreprocessConfig", "hookimpl"]
