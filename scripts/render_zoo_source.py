"""Write zoo/ (the remote FiftyOne zoo source committed at the repository root) from models.yaml.

    .venv/bin/python scripts/render_zoo_source.py

A test keeps it in sync; `foz.register_zoo_model_source("<repository or archive URL>")` reads it.
"""
from __future__ import annotations

from pathlib import Path

from fiftyone_mslite.integration.zoo import remote_source_files

FOLDER = Path(__file__).resolve().parents[1] / "zoo"


def stale() -> list[str]:
    """Files of zoo/ that differ from what models.yaml gives."""
    return [name for name, text in remote_source_files().items()
            if not (FOLDER / name).is_file() or (FOLDER / name).read_text(encoding="utf-8") != text]


if __name__ == "__main__":
    FOLDER.mkdir(exist_ok=True)
    for name, text in remote_source_files().items():
        (FOLDER / name).write_text(text, encoding="utf-8")
    print(f"wrote {FOLDER}")
