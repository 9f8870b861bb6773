"""The catalog shipped with the package (models.yaml), registered as a plugin like any other."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from ..files import UnreadableFile, open_regular
from ..hooks import hookimpl
from .schema import CatalogError, parse_entries

# A catalog holds entries (~1 KB a model), not data: the built-in one is ~30 KB. Why a cap: parsing a 200 MB user
# catalog took minutes before `models list` printed anything (issue 20).
CATALOG_MAX_BYTES = 4 << 20


def catalog_file() -> Path:
    return Path(str(resources.files("fiftyone_mslite.catalog").joinpath("models.yaml")))


def load_yaml(path: Path) -> object:
    """A catalog file's YAML, read only if it is a regular file of at most CATALOG_MAX_BYTES."""
    try:
        with open_regular(path, CATALOG_MAX_BYTES, "a catalog file") as f:
            text = f.read().decode("utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{path}: no such catalog file") from None
    except (UnreadableFile, UnicodeDecodeError, OSError) as exc:
        raise CatalogError(f"{path}: cannot read the catalog ({exc}); a catalog holds model entries, not data: "
                           "fix or move the file") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise CatalogError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None


def builtin_entries() -> tuple[dict, dict]:
    """(models, label sets) of models.yaml alone, without plugins or the user catalog."""
    return parse_entries(load_yaml(catalog_file()), origin="builtin")


@hookimpl
def register_models(register) -> None:
    models, label_sets = builtin_entries()
    for entry in (*label_sets.values(), *models.values()):
        register(entry)
