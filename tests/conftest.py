"""Shared fixtures. FiftyOne isolation happens here, before anything imports fiftyone."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FIFTYONE_MSLITE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (real models and data); tests that need it skip when it is absent."""
    if not (SHARED / "README.md").is_file():
        pytest.skip(f"needs ../shared (real models and data) at {SHARED}; absent in a fresh clone")
    return SHARED
