"""The committed remote zoo source (zoo/) is what models.yaml gives, so a repository URL always serves the catalog."""
from render_zoo_source import FOLDER, stale

from fiftyone_mslite.catalog.builtin import builtin_entries
from fiftyone_mslite.integration.zoo import REMOTE_SOURCE_NAME, remote_source_files


def test_committed_zoo_source_is_in_sync_with_models_yaml():
    assert stale() == [], f"zoo/ is stale: rerun scripts/render_zoo_source.py ({stale()})"


def test_remote_manifest_lists_every_builtin_model_with_its_requirements():
    import json

    data = json.loads(remote_source_files()["manifest.json"])
    assert data["name"] == REMOTE_SOURCE_NAME and (FOLDER / "__init__.py").is_file()
    assert [m["base_name"] for m in data["models"]] == sorted(builtin_entries()[0])
    for model in data["models"]:
        assert model["requirements"]["packages"] == ["fiftyone-mslite"] and model["license"]
        assert {"classification", "mindspore-lite"} <= set(model["tags"])
    tagged = {m["base_name"] for m in data["models"] if "embeddings" in m["tags"]}
    assert "coral-mobilenet-v2-quant" in tagged and "inceptionv3" not in tagged  # TFLite: found at conversion
