"""The plugin contract. Third-party packages implement these hooks and declare an entry point in the
`fiftyone_mslite` group; the built-in adapters and catalog are registered through the very same hooks, and the
runtime's built-in model formats and backends are rows of the same registries a plugin adds to."""
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
def register_formats(register: Callable[[Any], None]) -> None:
    """Call `register(ModelFormat(...))` for each model-file format this plugin reads (`runtime.formats`: its
    signature, suffixes, and the `prepare` step that turns it into something MindSpore Lite's converter reads)."""


@hookspec
def register_backends(register: Callable[[Any], None]) -> None:
    """Call `register(backend)` for each runtime backend (a `runtime.Backend` instance: `name`, `available()`,
    `formats`, `open(path, threads, batch_size, device, **options) -> Session`). It runs when named in
    `backend=` or FIFTYONE_MSLITE_BACKEND, or in "auto" if it sets a `priority`."""


@hookspec
def register_engines(register: Callable[[Any], None]) -> None:
    """Call `register(spec)` with a `fiftyone_mslite.engines.EngineSpec` for each annotate engine this plugin
    brings (`annotate(..., engine=spec.name)`, `fiftyone-mslite annotate --engine NAME`); docs/plugins.md."""
