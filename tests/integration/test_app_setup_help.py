"""The App plugin says, in the App, what is missing: the package (a folder `fiftyone plugins download` copied into a
Python without it) or the MindSpore Lite runtime."""
import json
import subprocess
import sys
import textwrap

from helpers.env import REPO, python_env

LOAD = textwrap.dedent("""
    import importlib.util, json, sys
    if sys.argv[2] == "no-package":
        sys.modules["fiftyone_mslite"] = None  # as in a Python where it was never installed
    spec = importlib.util.spec_from_file_location("plugin_under_test", sys.argv[1] + "/__init__.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)

    class Collect:
        ops = []
        def register(self, op):
            self.ops.append(op)

    collected = Collect()
    plugin.register(collected)
    if sys.argv[2] == "no-package":
        form = collected.ops[0]().resolve_input(None).to_json()
    else:
        import fiftyone.operators.types as types
        from fiftyone_mslite.app.forms import runtime_notice
        inputs = types.Object()
        shown = runtime_notice(inputs)
        form = {"shown": shown, "form": types.Property(inputs).to_json()}
    print(json.dumps({"operators": [op.__name__ for op in collected.ops], "form": form}))
""")


def _load(tmp_path, mode: str, **env: str) -> dict:
    script = tmp_path / "load.py"
    script.write_text(LOAD)
    out = subprocess.run([sys.executable, str(script), str(REPO / "fiftyone_mslite" / "app"), mode],
                         capture_output=True, text=True, env=python_env(**env), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_the_package_the_plugin_loads_and_says_how_to_install(tmp_path):
    got = _load(tmp_path, "no-package")
    assert got["operators"] == ["SetupHelp"]
    text = json.dumps(got["form"])
    assert "fiftyone plugins requirements @fiftyone-mslite/mslite --install" in text
    assert "fiftyone-mslite runtime install" in text


def test_without_a_runtime_the_forms_say_how_to_get_one(tmp_path):
    got = _load(tmp_path, "no-runtime", FIFTYONE_MSLITE_HOME=str(tmp_path / "empty"),
                FIFTYONE_MSLITE_RUNTIME_PYTHON="")
    assert got["operators"] == ["ApplyModel", "Evaluate", "EvaluateMultilabel", "ComputeEmbeddings", "CompareModels",
                                "ReliabilityPanel"]
    assert got["form"]["shown"] is True and "fiftyone-mslite runtime install" in json.dumps(got["form"])
    with_runtime = _load(tmp_path, "runtime")  # the test session's real runtime: no warning
    assert with_runtime["form"]["shown"] is False
