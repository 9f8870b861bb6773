"""What must start without FiftyOne's seconds-long import does: a Ray actor (it would pay it at every start), every
engine, the inference pipeline and `predict`. The import-linter contract checks the source; this checks a real
import (nothing pulls FiftyOne in at run time either)."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["fiftyone_mslite.engines.ray_actor", "fiftyone_mslite.engines.ray_engine",
                                    "fiftyone_mslite.engines", "fiftyone_mslite.pipeline", "fiftyone_mslite.predict"])
def test_imports_no_fiftyone(module):
    code = (f"import sys, {module}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fiftyone', 'eta')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
