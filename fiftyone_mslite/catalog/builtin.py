"""The catalog shipped with the package (models.yaml), registered as a plugin like any other."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from ..hooks import hookimpl
from .schema import CatalogError, parse_entries


def catalog_file() -> Path:
    return Path(str(resources.files("fiftyone_mslite.catalog").joinpath("models.yaml")))


def load_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise CatalogError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None


@hookimpl
def register_models(register) -> None:
    path = catalog_file()
    models, label_sets = parse_entries(load_yaml(path), origin="builtin")
    for entry in (*label_sets.values(), *models.values()):
        register(entry)
