"""The one configuration table: documented, and the only way environment variables are read."""
import re
from pathlib import Path

import pytest
from render_config_docs import DOC, render

from fiftyone_mslite.runtime import settings

PACKAGE = Path(settings.__file__).resolve().parents[1]


def test_configuration_doc_is_current():
    assert DOC.read_text(encoding="utf-8") == render(), "rerun scripts/render_config_docs.py"


def test_every_environment_read_goes_through_the_table():
    direct = []
    for path in PACKAGE.rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in re.findall(r"""(?:environ\.get|getenv)\(\s*["'](FIFTYONE_MSLITE_\w+)""", line):
                direct.append(f"{path.relative_to(PACKAGE)}:{n} reads {name}")
    assert not direct, "read FIFTYONE_MSLITE_* through runtime.settings:\n" + "\n".join(direct)
    used = set()
    for path in PACKAGE.rglob("*.py"):
        used |= set(re.findall(r"FIFTYONE_MSLITE_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
    declared = {s.name for s in settings.every_setting()}
    assert used <= declared, f"not in SETTINGS: {used - declared}"


def test_get_and_flag(monkeypatch):
    monkeypatch.setenv("FIFTYONE_MSLITE_OFFLINE", "Yes")
    assert settings.flag("FIFTYONE_MSLITE_OFFLINE")
    monkeypatch.setenv("FIFTYONE_MSLITE_OFFLINE", "0")
    assert not settings.flag("FIFTYONE_MSLITE_OFFLINE")
    monkeypatch.setenv("FIFTYONE_MSLITE_MIRROR", "")
    assert settings.get("FIFTYONE_MSLITE_MIRROR") is None
    with pytest.raises(KeyError, match="not in .*SETTINGS"):
        settings.get("FIFTYONE_MSLITE_TYPO")
