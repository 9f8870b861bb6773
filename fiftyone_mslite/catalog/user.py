"""The user catalog: the user's own models, added without editing the package.

Lives in a YAML file of the same form as models.yaml (default ~/.config/fiftyone-mslite/models.yaml,
FIFTYONE_MSLITE_USER_CATALOG overrides), and is registered through the plugin hooks like the built-in one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from ..plugins import hookimpl
from ..runtime import settings
from .builtin import load_yaml
from .schema import CatalogError, parse_entries

USER_CATALOG_ENV = "FIFTYONE_MSLITE_USER_CATALOG"


def user_catalog_path() -> Path:
    explicit = settings.get(USER_CATALOG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "fiftyone-mslite" / "models.yaml"


def read_user_catalog() -> dict:
    path = user_catalog_path()
    data = load_yaml(path) if path.is_file() else None
    data = data or {}
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a mapping with 'models' (and optionally 'label_sets')")
    data.setdefault("version", 1)
    data.setdefault("models", {})
    return data


def write_user_catalog(data: dict) -> Path:
    """Validate, then replace the file atomically: a bad entry never reaches disk."""
    path = user_catalog_path()
    parse_entries(data, origin=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".models-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)
    os.replace(tmp, path)
    return path


@hookimpl
def register_models(register) -> None:
    path = user_catalog_path()
    if not path.is_file():
        return
    models, label_sets = parse_entries(read_user_catalog(), origin=str(path))
    for entry in (*label_sets.values(), *models.values()):
        register(entry)


def add_model(name: str, source: str, labels: str, *, input_size: int | None = None, mean=None, std=None,
              resize: str = "short", crop_fraction: float = 0.875, interpolation: str = "bilinear",
              task: str = "single", sha256: str | None = None, description: str = ""):
    """Register a user model: fetch/convert it now, load it, check it against its labels, then save.

    Nothing is written unless the model loads and its outputs match the labels.
    """
    from .. import downloads, runtime
    from ..adapters.preprocessing import PreprocessConfig
    from . import registry, store
    from .adhoc import complete_entry
    from .schema import ModelEntry, Source

    if "://" in source:
        local = downloads.fetch(source, sha256=sha256)
        src = {"url": source, "sha256": sha256 or store.sha256_of(local)}
    else:
        local = Path(source).expanduser().resolve()
        if not local.is_file():
            raise CatalogError(f"--source {source}: no such file")
        digest = store.sha256_of(local)
        if sha256 and sha256 != digest:
            raise CatalogError(f"--source {source}: sha256 is {digest}, expected {sha256}")
        src = {"path": str(local), "sha256": digest}
    cat = registry.catalog()
    if labels not in cat.label_sets and "://" not in labels:
        labels = str(Path(labels).expanduser().resolve())
    pre = {"input_size": input_size, "resize": resize, "crop_fraction": crop_fraction,
           "interpolation": interpolation}
    pre.update({k: v for k, v in (("mean", mean), ("std", std)) if v is not None})
    entry = ModelEntry(name=name, description=description, task=task,
                       adapter="multilabel" if task == "multi" else "classifier", labels=labels, num_classes=1,
                       source=Source(**src), preprocess=PreprocessConfig(**pre), origin=str(user_catalog_path()))
    found = store.model_file(entry)
    with runtime.open_model(found.path) as session:
        entry = complete_entry(entry, session)
        cat.adapter_class(entry)(entry, cat.labels(entry.labels)).bind(session.inputs, session.outputs)
    data = read_user_catalog()
    data["models"][name] = entry.model_dump(mode="json", exclude={"name", "origin"}, exclude_defaults=True)
    write_user_catalog(data)
    registry.reset()
    return entry, found.path


def remove_model(name: str) -> Path:
    from . import registry

    data = read_user_catalog()
    if name not in data["models"]:
        raise CatalogError(f"'{name}' is not in the user catalog {user_catalog_path()} "
                           "(built-in models cannot be removed)")
    del data["models"][name]
    path = write_user_catalog(data)
    registry.reset()
    return path
