"""The runtime-level CLI: runtime install/info, convert, predict on model files; quiet by default."""
from __future__ import annotations

import json

import pytest
from helpers.cli import cli


def test_runtime_install_without_python37_says_how_to_fix(tmp_path):
    result = cli("runtime", "install", "--json", FIFTYONE_MSLITE_HOME=str(tmp_path),
                 FIFTYONE_MSLITE_PYTHON37=str(tmp_path / "no-python3.7"))
    assert result.returncode == 1
    message = json.loads(result.stdout)["message"]
    assert "no-python3.7" in message and "FIFTYONE_MSLITE_PYTHON37" in message




@pytest.mark.parametrize("args, message", [
    (["predict", "nope.ms", "x.jpg", "--labels", "imagenet-1000"], "model file not found: nope.ms"),
    (["convert", "/etc/hostname", "-o", "x.ms"], "cannot tell the format"),
])
def test_cli_errors_are_one_clear_line(args, message, tmp_path):
    result = cli(*args)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def served_404(http_root):
    """A loopback server where every label file is missing (404) and one URL redirects to itself."""
    return http_root[1]


def test_user_errors_never_print_a_traceback(tmp_path, served_404):
    bad_catalog = tmp_path / "user.yaml"
    bad_catalog.write_text("models: [not, a, mapping\n")
    junk = tmp_path / "x.onnx"
    junk.write_bytes(b"\x08\x07junk")
    cases = [
        (["models", "add", "m", "--source", str(junk), "--labels", "imagenet-1000x"], {}),
        (["predict", "coral-mobilenet-v2-quant", "x.jpg", "--labels", "/missing.txt"], {}),
        (["predict", "coral-mobilenet-v2-quant", "x.jpg", "--labels", f"{served_404}/labels.txt"], {}),
        (["models", "list"], {"FIFTYONE_MSLITE_USER_CATALOG": str(bad_catalog)}),
        (["models", "info", "ghostnet"], {"FIFTYONE_MSLITE_USER_CATALOG": str(bad_catalog)}),
    ]
    for args, env in cases:
        run = cli(*args, env={"FIFTYONE_MSLITE_OFFLINE": "0", **env})
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert "Traceback" not in run.stderr and run.stderr.startswith("error: "), (args, run.stderr)
        assert run.stderr.count("\n") <= 3, run.stderr  # a message, not a dump
        as_json = cli(*args, "--json", env=env)
        assert as_json.returncode == 1 and set(json.loads(as_json.stdout)) == {"error", "message"}, args
