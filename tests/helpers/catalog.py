"""Write a user catalog for a test (the next `catalog()` call reads it)."""
from __future__ import annotations

from pathlib import Path

import yaml

from fiftyone_mslite.catalog import registry


def write_user_catalog(tmp_path: Path, models: dict) -> Path:
    path = tmp_path / "user.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "models": models}))
    registry.reset()
    return path
