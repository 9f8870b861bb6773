"""What the App may make this server read or fetch (docs/security.md).

Operators run on the server with parameters from the browser, so whoever can open the App must not read the
server's files nor make it fetch URLs: models and label sets come from the catalog by name; a file path only under
a directory the operator lists in FIFTYONE_MSLITE_APP_ALLOWED_DIRS (none by default); a label-file URL only with
FIFTYONE_MSLITE_APP_ALLOW_URLS=1. A refusal reads the same whether or not the path exists.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fiftyone_mslite.errors import AppAccessError
from fiftyone_mslite.runtime import settings

ALLOWED_DIRS_ENV = settings.declare(
    "FIFTYONE_MSLITE_APP_ALLOWED_DIRS", "empty (none)", f"directories (separated by '{os.pathsep}') whose model and "
    "label files the App may read; catalog names always work")
ALLOW_URLS_ENV = settings.declare("FIFTYONE_MSLITE_APP_ALLOW_URLS", "0",
                                  "1: let the App fetch label-file URLs given in the browser")


def allowed_dirs() -> list[Path]:
    """The operator's allow-list, read at each call so a delegated executor applies its own setting."""
    return [Path(d).expanduser().resolve() for d in (settings.get(ALLOWED_DIRS_ENV) or "").split(os.pathsep)
            if d.strip()]


def server_path(value: str, what: str) -> str:
    """A browser-supplied path, resolved (symlinks and '..' included) and accepted only inside an allowed
    directory; the refusal does not depend on whether the path exists, so it cannot be used as a probe."""
    path = Path(os.path.realpath(value))
    if not any(path.is_relative_to(d) for d in allowed_dirs()):
        raise AppAccessError(f"{what} {value!r}: this App server reads files only from the directories its "
                             f"operator allows ({ALLOWED_DIRS_ENV}; none by default). Use a catalog name instead.")
    return str(path)


def catalog_model(name: str) -> str:
    from fiftyone_mslite.catalog.registry import catalog

    if name not in catalog().models:
        raise AppAccessError(f"model {name!r} is not in the catalog (`fiftyone-mslite models list`)")
    return name


def label_ref(value: str, what: str) -> str:
    """A label set of the catalog, or the labels a catalog model names (the operator's own choices); else a
    label-file URL if the operator enabled them, else a path in an allowed directory."""
    from fiftyone_mslite.catalog.registry import catalog

    cat = catalog()
    if value in cat.label_sets or value in {m.labels for m in cat.models.values()}:
        return value
    if "://" in value:
        if not settings.flag(ALLOW_URLS_ENV):
            raise AppAccessError(f"{what} {value!r}: this App server does not fetch URLs given in the browser "
                                 f"(its operator can enable them with {ALLOW_URLS_ENV}=1). Use a catalog label "
                                 "set name instead.")
        return value
    return server_path(value, f"{what} (not a catalog label set)")


def load_chosen_model(params: dict[str, Any]):
    """The model the form chose (a catalog model, or a file with its labels), checked against the operator's
    allow-lists; the caller closes it."""
    from fiftyone_mslite.integration.model import load_model

    if params.get("source", "CATALOG") == "FILE":
        return load_model(server_path(params["model_path"], "model file"),
                          labels=label_ref(params["labels"], "labels"))
    return load_model(catalog_model(params["model"]))


def load_catalog_model(name: str):
    """A catalog model by name (refused if not in the catalog); the caller closes it."""
    from fiftyone_mslite.integration.model import load_model

    return load_model(catalog_model(name))
