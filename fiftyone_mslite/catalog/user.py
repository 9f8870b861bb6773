"""The user catalog: the user's own models, added without editing the package.

Lives in a YAML file of the same form as models.yaml (default ~/.config/fiftyone-mslite/models.yaml,
FIFTYONE_MSLITE_USER_CATALOG overrides), and is registered through the plugin hooks like the built-in one.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..adapters.preprocessing import PreprocessConfig
from ..files import atomic_write
from ..hooks import hookimpl
from ..runtime import settings
from .builtin import load_yaml
from .schema import CatalogError, Embedding, Fact, ModelEntry, check_model_name, parse_entries

USER_CATALOG_ENV = "FIFTYONE_MSLITE_USER_CATALOG"
R = TypeVar("R")


def user_catalog_path() -> Path:
    explicit = settings.get(USER_CATALOG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "fiftyone-mslite" / "models.yaml"


def read_user_catalog() -> dict:
    path = user_catalog_path()
    data = load_yaml(path) if path.exists() else None  # a FIFO or directory is refused there, not skipped
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
    if not path.exists():
        return
    models, label_sets = parse_entries(read_user_catalog(), origin=str(path))
    for entry in (*label_sets.values(), *models.values()):
        register(entry)


def _named_and_undone_on_failure(add: Callable[..., R]) -> Callable[..., R]:
    """Check the model name before any download or conversion, and remove the converted-model folder the add made
    when it fails (a failed command leaves nothing behind; a folder that existed before stays)."""
    @functools.wraps(add)
    def checked(name: str, *args: Any, **kwargs: Any) -> R:
        from .model_files import converted_dir

        folder = converted_dir() / check_model_name(name)
        existed = folder.exists()
        try:
            return add(name, *args, **kwargs)
        except BaseException:
            if not existed:
                shutil.rmtree(folder, ignore_errors=True)
            raise
    return checked


@_named_and_undone_on_failure
def add_model(name: str, source: str, labels: str, *, input_size: int | None = None, mean=None, std=None,
              resize: str | None = None, crop_fraction: float | None = None, interpolation: str | None = None,
              channel_order: str | None = None, like: str | None = None, background: bool = False,
              task: str = "single", sha256: str | None = None, description: str = "", facts: tuple[Fact, ...] = ()):
    """Register a user model: fetch/convert it now, load it, check it against its labels, then save.

    Pre-processing not given comes from the catalog model `like` (its recipe, not its input size), else the
    defaults, with the crop defaulting by resize policy (none for squash). Mean and std not given come from the
    source's own declaration first (a TFLite file's metadata), and a `normalization` fact records where they
    came from. Nothing is written unless the model loads and its outputs match the labels. `facts` are stored
    with it (provenance, e.g. of a quantized model).
    """
    from .. import downloads, runtime
    from . import model_files, registry
    from .binding import bind, file_normalization
    from .schema import Source

    if "://" in source:
        local = downloads.fetch(source, sha256=sha256)
        src = {"url": source, "sha256": sha256 or model_files.sha256_of(local)}
    else:
        local = Path(source).expanduser().resolve()
        if not local.is_file():
            raise CatalogError(f"--source {source}: no such file")
        digest = model_files.sha256_of(local)
        if sha256 and sha256 != digest:
            raise CatalogError(f"--source {source}: sha256 is {digest}, expected {sha256}")
        src = {"path": str(local), "sha256": digest}
    cat = registry.catalog()
    if labels not in cat.label_sets and "://" not in labels and Path(labels).expanduser().exists():
        labels = str(Path(labels).expanduser().resolve())
    label_set = cat.labels(labels)  # a typo or a dead label URL fails here, before any conversion
    base = dataclasses.replace(cat.model(like).preprocess, input_size=None) if like else PreprocessConfig()
    mean, std, normalization = file_normalization(local, mean, std, like, reader="models add")
    preprocess = base.with_changes(input_size=input_size, resize=resize, crop_fraction=crop_fraction,
                                   interpolation=interpolation, mean=mean, std=std, channel_order=channel_order)
    entry = ModelEntry(name=name, description=description, task=task,
                       adapter="multilabel" if task == "multi" else "classifier", labels=labels, num_classes=1,
                       background=background, source=Source(**src), preprocess=preprocess, facts=facts,
                       origin=str(user_catalog_path()))
    found = model_files.model_file(entry)
    with runtime.open_model(found.path) as session:
        bound = bind(cat, entry, label_set, session, complete=True,
                     embedding_tensor=getattr(found.embedding, "tensor", None))
        inp = session.inputs[0]  # recorded so that people see the layout the recipe feeds
    # the embedding output is recorded (tensor and size), so that `models info` shows it and later loads need not
    # search; a file without it records none
    entry = bound.entry if bound.embedding is not None else bound.entry.model_copy(update={"embedding": Embedding()})
    entry = entry.model_copy(update={"facts": (*entry.facts, normalization, Fact(
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


def save_fact(name: str, fact: Fact) -> Path:
    """Store one measured fact about catalog model `name` in the user catalog, replacing earlier facts of the
    same field (a built-in model is copied there, as `save_calibrated` does). Fitted confidence calibrations and
    thresholds live here; a later pre-processing calibration drops them, since new pre-processing means new
    logits."""
    from . import registry

    entry = registry.catalog().model(name)
    facts = (*(f for f in entry.facts if f.field != fact.field), fact)
    return _save_entry(entry.model_copy(update={"facts": facts}))


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
