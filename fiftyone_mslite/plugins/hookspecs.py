"""The plugin contract. Third-party packages implement these hooks and declare an entry point in the
`fiftyone_mslite` group; the built-in adapters and catalog are registered through the very same hooks."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("fiftyone_mslite")
hookimpl = pluggy.HookimplMarker("fiftyone_mslite")


@hookspec
def register_adapters(register: Callable[[str, type], None]) -> None:
    """Call `register(name, AdapterClass)` for each model family this plugin serves."""


@hookspec
def register_models(register: Callable[[Any], None]) -> None:
    """Call `register(entry)` for each model or label set (a `ModelEntry`, a `LabelSetEntry`, or a dict in
    the models.yaml form with a `kind` of "model" (default) or "label_set")."""


@hookspec
def register_engines(register: Callable[[Any], None]) -> None:
    """Call `register(spec)` with a `fiftyone_mslite.engines.EngineSpec` for each annotate engine this plugin
    brings (`annotate(..., engine=spec.name)`, `fiftyone-mslite annotate --engine NAME`); docs/plugins.md."""
