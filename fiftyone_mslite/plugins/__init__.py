"""The plugin system (pluggy): the hook contract and the manager that loads built-in and third-party plugins."""
from .hookspecs import hookimpl
from .manager import DEFAULT_PLUGINS, ENTRY_POINT_GROUP, plugin_manager, plugin_names, reset

__all__ = ["hookimpl", "plugin_manager", "plugin_names", "reset", "ENTRY_POINT_GROUP", "DEFAULT_PLUGINS"]
