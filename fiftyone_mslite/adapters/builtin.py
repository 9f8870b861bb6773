"""The built-in adapters, registered through the same hook as third-party ones (registry keys are what
catalog entries name in `adapter:`)."""
from __future__ import annotations

from ..hooks import hookimpl
from .multilabel import MultiLabelAdapter
from .softmax import SoftmaxAdapter


@hookimpl
def register_adapters(register) -> None:
    register("classifier", SoftmaxAdapter)
    register("multilabel", MultiLabelAdapter)
