"""Write docs/configuration.md from `fiftyone_mslite.runtime.settings.every_setting()` (a unit test keeps it current).

    .venv/bin/python scripts/render_config_docs.py
"""
from __future__ import annotations

from pathlib import Path

from fiftyone_mslite.runtime.settings import every_setting

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def render() -> str:
    rows = "\n".join(f"| `{s.name}` | {s.meaning} | {s.default} |" for s in every_setting())
    return f"""# Configuration

Every environment variable fiftyone-mslite reads, generated from `fiftyone_mslite/runtime/settings.py` (the one
table, where the App and the demo add their own rows; code reads them only through `settings.get` /
`settings.flag`). `fiftyone-mslite runtime info --help` prints
the same list. Yes/no settings take `1`, `true`, `yes` or `on`.

| variable | what it sets | default |
|---|---|---|
{rows}

FiftyOne's own settings (`FIFTYONE_DATABASE_URI`, `FIFTYONE_PLUGINS_DIR`, `FIFTYONE_MODEL_ZOO_DIR`, …) apply as
documented by FiftyOne.
"""


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}")
