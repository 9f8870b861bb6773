"""The user catalog: the user's own models, added without editing the package.

Lives in a YAML file of the same form as models.yaml (default ~/.config/fiftyone-mslite/models.yaml,
FIFTYONE_MSLITE_USER_CATALOG overrides), and is registered through the plugin hooks like the built-in one.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml

from ..adapters.preprocessing import PreprocessConfig
from ..files import atomic_write
from ..hooks import hookimpl
from ..runtime import settings
from .builtin import load_yaml
from .schema import CatalogError, Embedding, Fact, ModelEntry, parse_entries

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
    return atomic_write(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


@hookimpl
def register_models(register) -> None:
    path = user_catalog_path()
    if not path.is_file():
        return
    models, label_sets = parse_entries(read_user_catalog(), origin=str(path))
    for entry in (*label_sets.values(), *models.values()):
        register(entry)


def add_model(name: str, source: str, labels: str, *, input_size: int | None = None, mean=None, std=None,
              resize: str | None = None, crop_fraction: float | None = None, interpolation: str | None = None,
              channel_order: str | None = None, like: str | None = None, background: bool = False,
              task: str = "single", sha256: str | None = None, description: str = ""):
    """Register a user model: fetch/convert it now, load it, check it against its labels, then save.

    Pre-processing not given comes from the catalog model `like` (its recipe, not its input size), else the
    defaults, with the crop defaulting by resize policy (none for squash). Nothing is written unless the model
    loads and its outputs match the labels.
    """
    from .. import downloads, runtime
    from . import registry, store
    from .binding import bind
    from .schema import Source

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
    if labels not in cat.label_sets and "://" not in labels and Path(labels).expanduser().exists():
        labels = str(Path(labels).expanduser().resolve())
    label_set = cat.labels(labels)  # a typo or a dead label URL fails here, before any conversion
    base = dataclasses.replace(cat.model(like).preprocess, input_size=None) if like else PreprocessConfig()
    preprocess = base.with_changes(input_size=input_size, resize=resize, crop_fraction=crop_fraction,
                                   interpolation=interpolation, mean=mean, std=std, channel_order=channel_order)
    entry = ModelEntry(name=name, description=description, task=task,
                       adapter="multilabel" if task == "multi" else "classifier", labels=labels, num_classes=1,
                       background=background, source=Source(**src), preprocess=preprocess,
                       origin=str(user_catalog_path()))
    found = store.model_file(entry)
    with runtime.open_model(found.path) as session:
        bound = bind(cat, entry, label_set, session, complete=True,
                     embedding_tensor=getattr(found.embedding, "tensor", None))
        inp = session.inputs[0]  # recorded so that people see the layout the recipe feeds
    # the embedding output is recorded (tensor and size), so that `models info` shows it and later loads need not
    # search; a file without it records none
    entry = bound.entry if bound.embedding is not None else bound.entry.model_copy(update={"embedding": Embedding()})
    entry = entry.model_copy(update={"facts": (*entry.facts, Fact(
        field="input", value={"layout": inp.layout, "shape": list(inp.shape), "dtype": inp.dtype},
        status="verified", source="read from the loaded model file by models add"))})
    _save_entry(entry)
    return entry, found.path


def _save_entry(entry: ModelEntry) -> Path:
    """Write one model into the user catalog (replacing any of that name) and re-read the catalog."""
    from . import registry

    data = read_user_catalog()
    data["models"][entry.name] = entry.model_dump(mode="json", exclude={"name", "origin"}, exclude_defaults=True)
    path = write_user_catalog(data)
    registry.reset()
    return path


def save_calibrated(name: str, preprocess: PreprocessConfig, fact: Fact) -> Path:
    """Store a measured recipe for catalog model `name` in the user catalog, with the measurement as a fact
    (replacing earlier calibrated facts). A built-in model is copied there, overriding it by name, so that
    `models remove` returns to the built-in recipe."""
    from . import registry

    entry = registry.catalog().model(name)
    facts = (*(f for f in entry.facts if f.status != "calibrated"), fact)
    return _save_entry(entry.model_copy(update={"preprocess": preprocess, "facts": facts}))


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
