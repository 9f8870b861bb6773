"""A test-only fiftyone-mslite plugin: one module per extension, each with its hook; this module only gathers the
hooks so that the entry point (`mslite_test_plugin`) registers them all. Add a module, import its hook here."""
from .engine import register_engines
from .recording_backend import register_backends
from .toy_format import register_formats

__all__ = ["register_backends", "register_engines", "register_formats"]
