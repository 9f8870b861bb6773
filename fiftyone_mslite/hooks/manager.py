"""The plugin manager: entry-point discovery plus the default plugins, registered the same way. Loading it also
registers the plugins' model formats and backends into the runtime's registries (the runtime, Python 3.7 and
pluggy-free, only holds the tables)."""
from __future__ import annotations

import importlib
from functools import lru_cache

import pluggy

from ..runtime import backends, formats
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
    pm.hook.register_formats(register=formats.register)
    pm.hook.register_backends(register=backends.register)
    return pm


def reset() -> None:
    """Forget loaded plugins (after installing one, or in tests)."""
    plugin_manager.cache_clear()


def plugin_names() -> list[str]:
    pm = plugin_manager()
    return sorted(pm.get_name(p) or repr(p) for p in pm.get_plugins())
