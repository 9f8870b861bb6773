"""Every ```python block in README.md and docs/ runs (blocks of one file share one interpreter, in order)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.env import REPO, python_env

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
SKIP = "<!-- not run: "


def python_blocks(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [m.group(1) for m in BLOCK.finditer(text) if SKIP not in text[max(0, m.start() - 200):m.start()]]


def run_blocks(doc: Path, tmp_path: Path, **env: str) -> None:
    script = tmp_path / f"{doc.stem}.py"
    script.write_text("\n\n".join(python_blocks(doc)))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=python_env(**env), capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"{doc.name}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


@pytest.mark.parametrize("doc", [d for d in DOCS if python_blocks(d) and d.name != "README.md"], ids=lambda p: p.name)
def test_doc_code_blocks_run(doc, tmp_path, tv_mobilenet, tiny_model, mirror):
    run_blocks(doc, tmp_path)


def test_readme_python_example_runs_on_a_fresh_clone(tmp_path, mirror):
    """Issue 13.16: the README's example needs no model that only the demo or `models add` creates (an empty user
    catalog); the mirror stands in for the internet."""
    run_blocks(REPO / "README.md", tmp_path, FIFTYONE_MSLITE_USER_CATALOG=str(tmp_path / "no-user-catalog.yaml"))


def test_catalog_doc_is_generated_from_models_yaml():
    from render_catalog_docs import render

    from fiftyone_mslite.catalog.registry import catalog

    assert (REPO / "docs" / "catalog.md").read_text() == render(catalog()), \
        "docs/catalog.md is stale: .venv/bin/python scripts/render_catalog_docs.py > docs/catalog.md"


def test_cli_reference_is_generated_from_the_commands():
    from render_cli_docs import render

    assert (REPO / "docs" / "cli.md").read_text() == render(), \
        "docs/cli.md is stale: .venv/bin/python scripts/render_cli_docs.py > docs/cli.md"


def test_public_api_names_stay_functions_after_their_modules_load():
    """A submodule named like a lazily exported function would shadow it once imported."""
    import fiftyone_mslite

    for name in fiftyone_mslite.__all__:
        getattr(fiftyone_mslite, name)
    import fiftyone_mslite.integration.annotation  # noqa: F401 - the module behind `annotate`

    assert callable(fiftyone_mslite.annotate) and fiftyone_mslite.annotate.__name__ == "annotate"
