"""The assembled catalog: every model, label set and adapter that the plugins registered."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache

from .. import hooks
from ..adapters.base import Adapter
from ..errors import ModelMismatchError
from ..runtime.tensors import TensorSpec
from .labelsets import LabelSet, file_label_set, load_label_set
from .schema import CatalogError, LabelSetEntry, ModelEntry, parse_entries


@dataclass
class Catalog:
    models: dict[str, ModelEntry] = field(default_factory=dict)
    label_sets: dict[str, LabelSetEntry] = field(default_factory=dict)
    adapters: dict[str, type[Adapter]] = field(default_factory=dict)
    _labels: dict[str, LabelSet] = field(default_factory=dict, repr=False)

    def model(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.models, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise CatalogError(f"unknown model '{name}'.{hint} `fiftyone-mslite models list` shows the catalog; "
                               "a local .ms/.mindir path works too.") from None

    def labels(self, ref: str) -> LabelSet:
        """A label set by name, or a label file by path/URL."""
        if ref not in self._labels:
            if ref in self.label_sets:
                self._labels[ref] = load_label_set(self.label_sets[ref])
            elif "://" in ref or "/" in ref or "." in ref:
                self._labels[ref] = file_label_set(ref)
            else:
                close = difflib.get_close_matches(ref, self.label_sets, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise CatalogError(f"unknown label set '{ref}'.{hint} Known: {', '.join(sorted(self.label_sets))}; "
                                   "give a label set name or a label file path/URL")
        return self._labels[ref]

    def adapter_class(self, entry: ModelEntry) -> type[Adapter]:
        try:
            return self.adapters[entry.adapter]
        except KeyError:
            raise CatalogError(f"model '{entry.name}' needs adapter '{entry.adapter}', which no installed plugin "
                               f"provides (known: {', '.join(sorted(self.adapters))})") from None

    def bound_adapter(self, entry: ModelEntry, labels: LabelSet, inputs: list[TensorSpec],
                      outputs: list[TensorSpec]) -> Adapter:
        """The entry's model family, built from its contract (pre-processing, labels, options) and bound to the
        loaded model's tensors. The family's prediction kind decides the task; an entry saying otherwise is
        refused."""
        family = self.adapter_class(entry)
        if family.prediction.task != entry.task:
            raise ModelMismatchError(f"model '{entry.name}' says task '{entry.task}', but its adapter "
                                     f"'{entry.adapter}' predicts task '{family.prediction.task}': fix `task` or "
                                     "`adapter` in its catalog entry")
        return family(entry.preprocess, labels, entry.adapter_options()).bind(inputs, outputs)


def _collect() -> Catalog:
    pm = hooks.plugin_manager()
    cat = Catalog()

    def add_adapter(name: str, cls: type) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Adapter)):
            raise CatalogError(f"adapter '{name}' must be a subclass of fiftyone_mslite.adapters.Adapter")
        cat.adapters[name] = cls

    def add_entry(entry: object) -> None:
        if isinstance(entry, dict):
            kind = entry.get("kind", "model")
            body = {k: v for k, v in entry.items() if k not in ("kind", "name")}
            section = "label_sets" if kind == "label_set" else "models"
            models, label_sets = parse_entries({section: {entry["name"]: body}}, origin="plugin")
            entry = (models or label_sets)[entry["name"]]
        if isinstance(entry, LabelSetEntry):
            cat.label_sets[entry.name] = entry
        elif isinstance(entry, ModelEntry):
            cat.models[entry.name] = entry  # later plugins (the user catalog) override earlier ones
        else:
            raise CatalogError(f"register() takes a ModelEntry, LabelSetEntry or dict, got {type(entry).__name__}")

    pm.hook.register_adapters(register=add_adapter)
    # Precedence is explicit: the built-in catalog, then third-party plugins, then the user's own catalog.
    rank = {"fiftyone_mslite.catalog.builtin": 0, "fiftyone_mslite.catalog.user": 2}
    for impl in sorted(pm.hook.register_models.get_hookimpls(), key=lambda i: rank.get(i.plugin_name, 1)):
        impl.function(register=add_entry)
    return cat


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    return _collect()


def reset() -> None:
    """Re-read catalogs and plugins (after `models add`, or a plugin install)."""
    hooks.reset()
    catalog.cache_clear()
