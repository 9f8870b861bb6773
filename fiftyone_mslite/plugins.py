"""Everything a plugin author needs, from one module: the hook marker, the types each hook registers and the
registries' look-ups. (`fiftyone_mslite.hooks` is the machinery: hook contract and plugin manager.)

    from fiftyone_mslite.plugins import Adapter, Backend, ModelFormat, PreprocessConfig, hookimpl

Hooks (see docs/plugins.md): `register_adapters(register)` (model families: `Adapter` subclasses),
`register_models(register)` (`ModelEntry`/`LabelSetEntry` or dicts), `register_formats(register)` (`ModelFormat`
rows), `register_backends(register)` (`Backend` instances).
"""
from .adapters.base import Adapter, AdapterOptions, ClassPrediction, LabelSetLike, MultiLabelPrediction
from .adapters.multilabel import MultiLabelAdapter
from .adapters.preprocessing import PreprocessConfig
from .adapters.softmax import SoftmaxAdapter
from .catalog.schema import LabelSetEntry, ModelEntry
from .errors import ModelMismatchError
from .hooks import DEFAULT_PLUGINS, ENTRY_POINT_GROUP, hookimpl, plugin_manager, plugin_names, reset
from .modelfiles.steps import Prepared, PrepareRequest
from .modelfiles.steps import resolve as resolve_step
from .runtime import Backend, ModelFormat, Session, TensorSpec
from .runtime.backends import get as backend
from .runtime.formats import get as model_format

__all__ = [
    "hookimpl", "Adapter", "SoftmaxAdapter", "MultiLabelAdapter", "ClassPrediction", "MultiLabelPrediction",
    "AdapterOptions", "LabelSetLike", "PreprocessConfig", "ModelEntry", "LabelSetEntry", "ModelMismatchError",
    "ModelFormat", "Prepared", "PrepareRequest", "resolve_step", "model_format", "Backend", "Session", "TensorSpec",
    "backend", "plugin_manager", "plugin_names", "reset", "ENTRY_POINT_GROUP", "DEFAULT_PLUGINS",
]
