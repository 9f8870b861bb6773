"""The plugin system (pluggy): the hook contract and the manager that loads built-in and third-party plugins.

Below the model-file layer, so that converting a file of a plugin's format finds that format."""
from .hookspecs import hookimpl
from .manager import DEFAULT_PLUGINS, ENTRY_POINT_GROUP, plugin_manager, plugin_names, reset

__all__ = ["hookimpl", "plugin_manager", "plugin_names", "reset", "ENTRY_POINT_GROUP", "DEFAULT_PLUGINS"]
