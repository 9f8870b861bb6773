"""Legacy-schema (v0) ``.ms`` files: read them, translate them op by op, write the current (MSL2) schema.

Also graph surgery on current-schema files: expose internal tensors as extra graph outputs.
"""
from ...errors import LegacyUpgradeError
from .upgrade import UpgradeReport, is_legacy, legacy_summary, upgrade_ms

__all__ = ["LegacyUpgradeError", "UpgradeReport", "is_legacy", "legacy_summary", "upgrade_ms"]
