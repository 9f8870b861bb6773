"""The plugin manager: entry-point discovery plus the default plugins, registered the same way."""
from __future__ import annotations

import importlib
from functools import lru_cache

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "fiftyone_mslite"
DEFAULT_PLUGINS = (
    "fiftyone_mslite.adapters.builtin",
    "fiftyone_mslite.catalog.builtin",
    "fiftyone_mslite.catalog.user",
    "fiftyone_mslite.engines.builtin",
)


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    return pm


def reset() -> None:
    """Forget loaded plugins (after installing one, or in tests)."""
    plugin_manager.cache_clear()


def plugin_names() -> list[str]:
    pm = plugin_manager()
    return sorted(pm.get_name(p) or repr(p) for p in pm.get_plugins())
